/**
 * Runs a system command for the login hook: a fixed PATH, no inherited environment, no stdin,
 * a time limit, and a result that never throws (the hook decides what a failure means).
 * Plain node:child_process rather than execa: the hook runs on every login, and loading execa
 * alone costs more than a tenth of a second there.
 */
import { spawn } from "node:child_process";

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

const MAX_OUTPUT = 4 * 1024 * 1024;

export function runCommand(
  file: string,
  args: string[],
  opts: { timeoutSec?: number; env?: Record<string, string> } = {},
): Promise<CommandResult> {
  const command = [file, ...args].join(" ");
  const timeoutSec = opts.timeoutSec ?? 30;
  return new Promise((resolve) => {
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    let spawnError = "";
    const child = spawn(file, args, {
      env: systemEnv(opts.env),
      stdio: ["ignore", "pipe", "pipe"],
      cwd: "/",
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutSec * 1000);
    child.stdout.on("data", (d: Buffer) => {
      if (stdout.length < MAX_OUTPUT) stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      if (stderr.length < MAX_OUTPUT) stderr += d.toString();
    });
    child.on("error", (err) => {
      spawnError = err.message;
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      const exitCode = code ?? -1;
      const said = (stderr || stdout).trim().split("\n").slice(-2).join(" / ");
      const how = timedOut
        ? `timed out after ${timeoutSec}s`
        : spawnError
          ? `could not run (${spawnError})`
          : `exit ${exitCode}`;
      resolve({
        command,
        exitCode,
        stdout: stdout.replace(/\n$/, ""),
        stderr: stderr.replace(/\n$/, ""),
        timedOut,
        summary: `${command}: ${how}${said ? `: ${said}` : ""}`,
      });
    });
  });
}
