import { type ChildProcess, spawn } from "node:child_process";
import { findTool, requireTool } from "./host-tools.js";
import { reapOnExit } from "./reaper.js";

export interface QemuProcess {
  child: ChildProcess;
  pid: number;
  /** Resolves when QEMU has exited (never rejects). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** QEMU's stderr so far (capped). */
  stderr(): string;
  /** SIGKILLs QEMU if it still runs. */
  kill(): void;
}

const STDERR_CAP = 64 * 1024;

/**
 * Starts qemu-system-x86_64 with `args` (behind `wrapper`, if given). QEMU is registered with the reaper (killed when this
 * process exits or is signalled) and, when util-linux's setpriv is there, gets SIGKILL as its
 * parent-death signal, so even a SIGKILLed Node leaves no QEMU behind.
 */
export function startQemu(args: string[], qemuBinary?: string, wrapper: string[] = []): QemuProcess {
  const qemu = qemuBinary ?? requireTool("qemu-system-x86_64");
  const setpriv = findTool("setpriv");
  // `wrapper` (e.g. `ip netns exec NS`) must exec, not fork, so the death signal reaches QEMU.
  const cmd = [...wrapper, qemu, ...args];
  const [file, argv] = setpriv ? [setpriv, ["--pdeathsig", "KILL", "--", ...cmd]] : [cmd[0]!, cmd.slice(1)];
  const child = spawn(file, argv, { stdio: ["ignore", "ignore", "pipe"] });
  reapOnExit(child);
  let err = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (d: string) => {
    if (err.length < STDERR_CAP) err += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
    child.once("error", (e) => {
      err += String(e);
      resolve({ code: null, signal: null });
    });
  });
  return {
    child,
    pid: child.pid ?? -1,
    exited,
    stderr: () => err,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}
