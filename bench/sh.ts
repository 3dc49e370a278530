// Shell helpers for the benchmark: run a command under bash, time it with process.hrtime.
import { spawn } from "node:child_process";

export interface ShResult {
  code: number;
  out: string;
  err: string;
}

/** Runs `cmd` with `bash -c` in `cwd`; never throws on a non-zero exit. */
export function sh(cmd: string, cwd = "/"): Promise<ShResult> {
  return new Promise((resolve, reject) => {
    const p = spawn("bash", ["-c", cmd], { cwd, stdio: ["ignore", "pipe", "pipe"], env: benchEnv() });
    let out = "";
    let err = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (err += d.toString()));
    p.on("error", reject);
    p.on("close", (code) => resolve({ code: code ?? -1, out, err }));
  });
}

/** Runs `cmd` and throws with its output if it fails. */
export async function must(cmd: string, cwd = "/"): Promise<string> {
  const r = await sh(cmd, cwd);
  if (r.code !== 0) throw new Error(`${cmd}: exit ${r.code}: ${(r.err || r.out).trim().slice(0, 500)}`);
  return r.out;
}

/** Seconds taken by `cmd` (which must succeed). */
export async function timed(cmd: string, cwd: string): Promise<number> {
  const t0 = process.hrtime.bigint();
  await must(cmd, cwd);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function benchEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    LC_ALL: "C",
    GIT_AUTHOR_NAME: "bench",
    GIT_AUTHOR_EMAIL: "bench@example.invalid",
    GIT_COMMITTER_NAME: "bench",
    GIT_COMMITTER_EMAIL: "bench@example.invalid",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_CONFIG_NOSYSTEM: "1",
  };
}
