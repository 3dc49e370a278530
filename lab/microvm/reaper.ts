import type { ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";

// Every QEMU we start is registered here and SIGKILLed if this Node process exits or is told to
// stop (SIGINT/SIGTERM/SIGHUP). If Node itself is SIGKILLed, the parent-death signal set by
// setpriv (see vm.ts) takes QEMU down with it.

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
const SIGNALS: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
let installed = false;

function killAll(): void {
  for (const c of live) {
    try {
      c.kill("SIGKILL");
    } catch {
      /* already gone */
    }
  }
  for (const d of dirs) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
}

function onSignal(sig: NodeJS.Signals): void {
  killAll();
  // If nobody else handles this signal, restore the default behaviour (terminate) and re-raise.
  if (process.listenerCount(sig) === 1) {
    uninstall();
    process.kill(process.pid, sig);
  }
}

function maybeUninstall(): void {
  if (live.size === 0 && dirs.size === 0) uninstall();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on("exit", killAll);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  process.off("exit", killAll);
  for (const s of SIGNALS) process.off(s, onSignal);
}

/** Kills `child` when this process goes away, until the child exits by itself. */
export function reapOnExit(child: ChildProcess): void {
  live.add(child);
  install();
  const forget = (): void => {
    live.delete(child);
    maybeUninstall();
  };
  child.once("exit", forget);
  child.once("error", forget);
}

/** Removes `dir` (recursively) if this process exits or is signalled before `forgetDir(dir)`. */
export function removeOnExit(dir: string): void {
  dirs.add(dir);
  install();
}

export function forgetDir(dir: string): void {
  dirs.delete(dir);
  maybeUninstall();
}

/** Number of tracked, still running children (for tests). */
export function liveChildren(): number {
  return live.size;
}
