// Running commands from tests: one helper that never throws on a non-zero exit and always
// hands back what the command said, so a failed expectation shows the command's own words.

import { execa } from "execa";

export interface RunResult {
  stdout: string;
  stderr: string;
  /** exit code; -1 when killed by a signal or not started */
  code: number;
  /** the command line, for messages */
  command: string;
  signal?: string;
}

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  input?: string | Buffer;
  timeoutMs?: number;
  /** run as this user (and group) through setpriv; tests run as root */
  as?: Cred;
}

export interface Cred {
  uid: number;
  gid: number;
}

/** The unprivileged user the permission tests run as. */
export const NOBODY: Cred = { uid: 65534, gid: 65534 };

/** The system python: pyenv shims under /root are out of reach of an unprivileged user. */
export const PYTHON = "/usr/bin/python3";

/** setpriv argv prefix that drops to `cred` with no supplementary groups. */
export function asUserArgv(cred: Cred): string[] {
  return ["setpriv", `--reuid=${cred.uid}`, `--regid=${cred.gid}`, "--clear-groups"];
}

/** Runs `file args…`; never rejects for a non-zero exit. */
export async function run(
  file: string,
  args: readonly string[] = [],
  opts: RunOptions = {},
): Promise<RunResult> {
  let argv = [file, ...args];
  if (opts.as) argv = [...asUserArgv(opts.as), ...argv];
  const [cmd, ...rest] = argv as [string, ...string[]];
  const r = await execa(cmd, rest, {
    reject: false,
    cwd: opts.cwd,
    env: opts.env,
    extendEnv: true,
    input: opts.input,
    stdin: opts.input === undefined ? "ignore" : undefined,
    timeout: opts.timeoutMs ?? 120_000,
    stripFinalNewline: false,
    encoding: "utf8",
  });
  return {
    stdout: String(r.stdout ?? ""),
    stderr: String(r.stderr ?? ""),
    code: typeof r.exitCode === "number" ? r.exitCode : -1,
    command: argv.join(" "),
    ...(r.signal ? { signal: r.signal } : {}),
  };
}

/** Runs a shell snippet with sh -c. */
export function sh(script: string, opts: RunOptions = {}): Promise<RunResult> {
  return run("sh", ["-c", script], opts);
}

/** Runs, and throws with the command's output unless it exits 0. */
export async function mustRun(
  file: string,
  args: readonly string[] = [],
  opts: RunOptions = {},
): Promise<RunResult> {
  const r = await run(file, args, opts);
  if (r.code !== 0) throw new Error(describeFailure(r));
  return r;
}

export function mustSh(script: string, opts: RunOptions = {}): Promise<RunResult> {
  return mustRun("sh", ["-c", script], opts);
}

export function describeFailure(r: RunResult): string {
  return `\`${r.command}\` exited ${r.code}${r.signal ? ` (${r.signal})` : ""}\n--- stdout ---\n${tail(r.stdout)}\n--- stderr ---\n${tail(r.stderr)}`;
}

export function tail(s: string, n = 4000): string {
  return s.length > n ? "…" + s.slice(-n) : s;
}

/** Runs a python3 snippet; `args` arrive as sys.argv[1:]. */
export function python(
  code: string,
  args: readonly string[] = [],
  opts: RunOptions = {},
): Promise<RunResult> {
  return run(PYTHON, ["-c", code, ...args], opts);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((res) => setTimeout(res, ms));
}

/** Polls `probe` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(
  probe: () => T | Promise<T>,
  timeoutMs: number,
  stepMs = 50,
): Promise<T | undefined> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) return undefined;
    await sleep(stepMs);
  }
}
