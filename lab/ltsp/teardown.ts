import { execFileSync } from "node:child_process";

// Things the lab must undo even when the run crashes: network namespaces, container processes.
// (QEMU children are killed by lab/microvm/reaper.ts and their parent-death signal.) Each action
// is synchronous so it can run from process.on("exit").

type Action = { name: string; run: () => void };
const actions: Action[] = [];
let installed = false;

function runAll(): void {
  while (actions.length) {
    const a = actions.pop()!;
    try {
      a.run();
    } catch {
      /* best effort: keep undoing the rest */
    }
  }
}

function onSignal(sig: NodeJS.Signals): void {
  runAll();
  if (process.listenerCount(sig) <= 1) {
    process.removeAllListeners(sig);
    process.kill(process.pid, sig);
  }
}

/** Registers `run` to happen at exit (or on SIGINT/SIGTERM/SIGHUP); returns a function that does it now, once. */
export function atTeardown(name: string, run: () => void): () => void {
  if (!installed) {
    installed = true;
    process.on("exit", runAll);
    for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(s, onSignal);
  }
  const action = { name, run };
  actions.push(action);
  return () => {
    const i = actions.indexOf(action);
    if (i < 0) return;
    actions.splice(i, 1);
    try {
      run();
    } catch {
      /* already undone */
    }
  };
}

/** Runs a command synchronously, ignoring failure (for teardown). */
export function quietly(file: string, args: string[]): void {
  try {
    execFileSync(file, args, { stdio: "ignore", timeout: 20_000 });
  } catch {
    /* best effort */
  }
}
