/**
 * The per-user lock: flock(2) on <state_dir>/<user>/lock, held by a small `sh` child (Node has
 * no flock). The child takes the lock, reports the locked file's device:inode, and holds it
 * until we close its stdin, or until we die (its stdin then closes by itself). Nothing we start
 * while holding it inherits the lock: the child's pipes are close-on-exec on our side.
 *
 * The last logout deletes the lock file while holding it; a waiter that then gets the lock on
 * the deleted file notices the inode changed and tries again.
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import { systemEnv } from "./run.js";

const HOLDER = `exec 9>>"$1" || exit 3
flock -w "$2" 9 || exit 4
echo "locked $(stat -L -c %d:%i /dev/fd/9)"
read _ || true`;

export class LockTimeout extends Error {}

export interface HeldLock {
  path: string;
  release(): Promise<void>;
}

function startHolder(file: string, waitSec: number): Promise<{ child: ChildProcess; id: string | null }> {
  return new Promise((resolve) => {
    const child = spawn("sh", ["-c", HOLDER, "sh", file, String(Math.max(1, Math.ceil(waitSec)))], {
      stdio: ["pipe", "pipe", "ignore"],
      env: systemEnv(),
      cwd: "/",
    });
    let out = "";
    let done = false;
    const finish = (id: string | null): void => {
      if (done) return;
      done = true;
      resolve({ child, id });
    };
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /^locked (\d+:\d+)\n/.exec(out);
      if (m) finish(m[1]!);
    });
    child.on("exit", () => finish(null));
    child.on("error", () => finish(null));
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.stdin?.end();
    setTimeout(() => child.kill("SIGKILL"), 2000).unref();
  });
}

/** Takes the lock in `dir` (created 0700 if missing), waiting at most `timeoutSec`. */
export async function takeLock(dir: string, timeoutSec: number): Promise<HeldLock> {
  const file = `${dir}/lock`;
  const deadline = Date.now() + timeoutSec * 1000;
  for (let attempt = 0; ; attempt++) {
    const left = (deadline - Date.now()) / 1000;
    if (left <= 0) throw new LockTimeout(`could not take ${file} within ${timeoutSec}s`);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const { child, id } = await startHolder(file, left);
    if (id !== null) {
      let current: string | null = null;
      try {
        const st = fs.statSync(file);
        current = `${st.dev}:${st.ino}`;
      } catch {
        /* deleted by the holder before us */
      }
      if (current === id) return { path: file, release: () => stop(child) };
    }
    await stop(child);
    if (id === null && Date.now() >= deadline)
      throw new LockTimeout(`could not take ${file} within ${timeoutSec}s`);
    await new Promise((r) => setTimeout(r, Math.min(200, 10 * (attempt + 1))));
  }
}
