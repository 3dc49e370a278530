/**
 * Processes, read from /proc: whether one is still the same process (pid plus start time, so a
 * reused pid is not mistaken for it), and which processes use a directory tree (cwd, root,
 * open files, mapped files). Only readlink is used: a dead or hung FUSE mount is never touched.
 */
import fs from "node:fs";

export interface ProcessId {
  pid: number;
  /** start time in clock ticks since boot (field 22 of /proc/PID/stat) */
  start: number;
}

function stat(pid: number): { state: string; start: number; ppid: number } | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { state: f[0] ?? "?", ppid: Number(f[1]), start: Number(f[19]) };
}

export function processId(pid: number): ProcessId | null {
  const s = stat(pid);
  return s ? { pid, start: s.start } : null;
}

/** True while the process runs (a zombie counts as gone) and is still the one that started at `start`. */
export function isRunning(p: ProcessId | null | undefined): boolean {
  if (!p || !Number.isInteger(p.pid) || p.pid <= 1) return false;
  const s = stat(p.pid);
  return s !== null && s.state !== "Z" && s.state !== "X" && s.start === p.start;
}

export interface ProcessUse {
  pid: number;
  uid: number;
  command: string;
  /** what points into the tree: "cwd", "root", "exe", "fd 4", "mmap" */
  how: string;
}

function within(p: string, tree: string): boolean {
  const clean = p.replace(/ \(deleted\)$/, "");
  return clean === tree || clean.startsWith(tree.endsWith("/") ? tree : tree + "/");
}

function link(p: string): string | null {
  try {
    return fs.readlinkSync(p);
  } catch {
    return null;
  }
}

function uidOf(pid: number): number {
  try {
    const m = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : -1;
  } catch {
    return -1;
  }
}

function commandOf(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "?";
  }
}

/** Processes with their cwd, root, executable, an open file or a mapped file inside `tree`. */
export function processesUsing(tree: string): ProcessUse[] {
  const out: ProcessUse[] = [];
  let pids: string[];
  try {
    pids = fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const d of pids) {
    const pid = Number(d);
    if (pid === process.pid) continue;
    let how: string | null = null;
    for (const k of ["cwd", "root", "exe"]) {
      const l = link(`/proc/${pid}/${k}`);
      if (l !== null && within(l, tree)) {
        how = k;
        break;
      }
    }
    if (how === null) {
      let fds: string[] = [];
      try {
        fds = fs.readdirSync(`/proc/${pid}/fd`);
      } catch {
        /* gone, or not ours to read */
      }
      for (const fd of fds) {
        const l = link(`/proc/${pid}/fd/${fd}`);
        if (l !== null && l.startsWith("/") && within(l, tree)) {
          how = `fd ${fd}`;
          break;
        }
      }
    }
    if (how === null) {
      try {
        const maps = fs.readFileSync(`/proc/${pid}/maps`, "utf8");
        for (const line of maps.split("\n")) {
          const i = line.indexOf("/");
          if (i > 0 && within(line.slice(i), tree)) {
            how = "mmap";
            break;
          }
        }
      } catch {
        /* gone */
      }
    }
    if (how !== null) out.push({ pid, uid: uidOf(pid), command: commandOf(pid), how });
  }
  return out;
}

export function describeUses(uses: ProcessUse[]): string {
  return uses.map((u) => `${u.command} (pid ${u.pid}, uid ${u.uid}, ${u.how})`).join(", ");
}

/** Sends a signal to a process that is still the given one; false if it was already gone. */
export function signal(p: ProcessId, sig: NodeJS.Signals): boolean {
  if (!isRunning(p)) return false;
  try {
    process.kill(p.pid, sig);
    return true;
  } catch {
    return false;
  }
}

export async function waitGone(ps: ProcessId[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!ps.some(isRunning)) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}
