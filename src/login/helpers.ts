/** Small shared pieces of the login integration: timeouts, statfs with a limit, the helper processes' launcher. */
import { spawn } from "node:child_process";
import fs from "node:fs";
import { fileURLToPath } from "node:url";
import { type ProcessId, processId } from "./processes.js";
import { runCommand, systemEnv } from "./run.js";

export const HOOK_PATH = fileURLToPath(new URL("./hook.js", import.meta.url));

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** statfs that gives up after `ms` (a hung FUSE driver must not hang the hook). */
export async function statfsWithin(p: string, ms: number): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((r) => (timer = setTimeout(() => r(`no answer within ${ms} ms`), ms)));
  const check = fs.promises.statfs(p).then(
    () => null,
    (err: NodeJS.ErrnoException) => `${err.code ?? "error"}: ${err.message}`,
  );
  try {
    return await Promise.race([check, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface Helper {
  process: ProcessId | null;
  unit: string;
}

/**
 * Starts the hook itself in another role (watcher, logout finisher) so that it outlives the PAM
 * call: a transient systemd service where systemd runs (outside the session's cgroup), otherwise
 * a detached process with no inherited descriptors.
 */
export async function startHelper(args: string[], systemd: boolean, unit: string): Promise<Helper | string> {
  if (systemd) {
    const r = await runCommand(
      "systemd-run",
      [
        `--unit=${unit}`,
        "--collect",
        "--quiet",
        "--no-block",
        "--property=KillMode=process",
        "--",
        process.execPath,
        HOOK_PATH,
        ...args,
      ],
      { timeoutSec: 15 },
    );
    return r.exitCode === 0 ? { process: null, unit } : r.summary;
  }
  const child = spawn(process.execPath, [HOOK_PATH, ...args], {
    detached: true,
    stdio: "ignore",
    env: systemEnv(),
    cwd: "/",
  });
  const started = await new Promise<boolean>((resolve) => {
    child.once("spawn", () => resolve(true));
    child.once("error", () => resolve(false));
  });
  child.unref();
  if (!started || !child.pid) return `could not start ${HOOK_PATH}`;
  return { process: processId(child.pid), unit: "" };
}
