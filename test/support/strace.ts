// Counting a daemon's system calls while a workload runs: strace -f attached to its pid (all
// threads: libuv's thread pool does the file I/O).

import { spawn } from "node:child_process";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { waitFor } from "./run.js";
import { killSync, track } from "./cleanup.js";

export interface Trace {
  /** every traced call line (without the leading pid) */
  lines: string[];
  /** calls of `name` */
  count(name: string | RegExp): number;
  /** the calls whose arguments mention `needle` */
  matching(name: string | RegExp, needle: string): string[];
}

/** Runs `workload` with strace attached to `pid`, tracing `syscalls` (strace -e trace=…). */
export async function traceDuring(
  pid: number,
  syscalls: string[],
  workDir: string,
  workload: () => Promise<void>,
): Promise<Trace> {
  const out = join(workDir, `strace-${pid}-${Date.now()}.txt`);
  // -y: descriptors are shown with their paths (fsync(12</…/.pershome.meta.a>))
  const st = spawn(
    "strace",
    ["-f", "-y", "-e", `trace=${syscalls.join(",")}`, "-o", out, "-p", String(pid)],
    {
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let err = "";
  st.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exited = new Promise<void>((res) => st.once("exit", () => res()));
  const untrack = track({ what: `strace ${st.pid}`, undo: () => killSync(st.pid, "SIGKILL") });
  try {
    // strace announces each thread it attached; wait for the announcements to settle.
    const ok = await waitFor(() => /attached/.test(err), 15_000);
    if (!ok) throw new Error(`strace did not attach to ${pid}: ${err}`);
    let n = -1;
    await waitFor(
      () => {
        const m = (err.match(/attached/g) ?? []).length;
        const settled = m === n;
        n = m;
        return settled;
      },
      5_000,
      200,
    );
    await workload();
  } finally {
    killSync(st.pid, "SIGINT");
    await exited;
    untrack();
  }
  const text = await readFile(out, "utf8");
  await rm(out, { force: true });
  const lines = text
    .split("\n")
    .map((l) => l.replace(/^\d+\s+/, ""))
    .filter((l) => /^[a-z_0-9]+\(/.test(l) || /<\.\.\. [a-z_0-9]+ resumed>/.test(l));
  const nameOf = (l: string): string =>
    /^([a-z_0-9]+)\(/.exec(l)?.[1] ?? /<\.\.\. ([a-z_0-9]+) resumed>/.exec(l)?.[1] ?? "";
  const calls = lines.filter((l) => !/<\.\.\. [a-z_0-9]+ resumed>/.test(l));
  const is = (l: string, name: string | RegExp): boolean =>
    typeof name === "string" ? nameOf(l) === name : name.test(nameOf(l));
  return {
    lines: calls,
    count: (name) => calls.filter((l) => is(l, name)).length,
    matching: (name, needle) => calls.filter((l) => is(l, name) && l.includes(needle)),
  };
}
