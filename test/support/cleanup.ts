// Last-resort cleanup: whatever a test left mounted or running is undone when the test process
// exits, even after a failure or a timeout. Normal teardown (fixture afterAll) does it first;
// this only catches what that could not.

import { spawnSync } from "node:child_process";

export interface Leftover {
  /** what it is, for messages */
  what: string;
  /** synchronous, best-effort undo; must not throw */
  undo(): void;
}

const leftovers = new Set<Leftover>();
let installed = false;

export function track(l: Leftover): () => void {
  install();
  leftovers.add(l);
  return () => leftovers.delete(l);
}

export function undoAllNow(): void {
  // Newest first: a layer mounted on a lower must go before the lower.
  for (const l of [...leftovers].reverse()) {
    try {
      l.undo();
    } catch {
      /* best effort */
    }
    leftovers.delete(l);
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  process.once("exit", undoAllNow);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(sig, () => {
      undoAllNow();
      process.exit(128 + (sig === "SIGINT" ? 2 : sig === "SIGTERM" ? 15 : 1));
    });
  }
}

/** Lazy unmount, ignoring "not mounted". */
export function lazyUnmountSync(path: string): void {
  spawnSync("umount", ["-l", path], { stdio: "ignore", timeout: 10_000 });
}

export function killSync(pid: number | undefined, signal: NodeJS.Signals = "SIGKILL"): void {
  if (!pid) return;
  try {
    process.kill(pid, signal);
  } catch {
    /* gone */
  }
}
