/**
 * Runs a system command for the login hook: a fixed PATH, no inherited environment, no stdin,
 * a time limit, and a result that never throws (the hook decides what a failure means).
 */
import { execa } from "execa";

export const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The environment every command and daemon started by the hook gets (PAM gives almost none). */
export function systemEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: SYSTEM_PATH, LANG: "C.UTF-8", LC_ALL: "C.UTF-8", ...extra };
}

export interface CommandResult {
  command: string;
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** one line for a log: the command, how it ended and what it said */
  summary: string;
}

export async function runCommand(
  file: string,
  args: string[],
  opts: { timeoutSec?: number; input?: string; env?: Record<string, string> } = {},
): Promise<CommandResult> {
  const command = [file, ...args].join(" ");
  const r = await execa(file, args, {
    reject: false,
    extendEnv: false,
    env: systemEnv(opts.env),
    timeout: Math.round((opts.timeoutSec ?? 30) * 1000),
    killSignal: "SIGKILL",
    ...(opts.input !== undefined ? { input: opts.input } : { stdin: "ignore" }),
    cwd: "/",
  });
  const exitCode = r.exitCode ?? -1;
  const stdout = typeof r.stdout === "string" ? r.stdout : "";
  const stderr = typeof r.stderr === "string" ? r.stderr : "";
  const timedOut = r.timedOut === true;
  const said = (stderr || stdout).trim().split("\n").slice(-2).join(" / ");
  const how = timedOut
    ? `timed out after ${opts.timeoutSec ?? 30}s`
    : exitCode === -1
      ? `could not run (${(r.message ?? "").split("\n")[0]})`
      : `exit ${exitCode}`;
  return { command, exitCode, stdout, stderr, timedOut, summary: `${command}: ${how}${said ? `: ${said}` : ""}` };
}
