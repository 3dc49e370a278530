/* global process, console */
// What bench/vfat-*/run.mjs share: fresh FAT32 sticks, one micro-VM boot running the bench's
// guest.mjs with the given arguments (the guest's output streams to stderr), then only its
// BENCH lines on stdout (the output's tail if there are none) and its exit status.
// Needs the build (`npm run build`: dist/lab).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { runInVm } from "../dist/lab/microvm/index.js";
import { makeFat32Stick } from "../dist/lab/sticks/index.js";

/**
 * @param {string} guest the guest program (a path the VM sees: the host's / is its root)
 * @param {string[]} args its arguments
 * @param {{ sticksMb: number[], timeoutMs: number }} o a FAT32 stick per size (/dev/sda, /dev/sdb...)
 */
export async function runVfatBench(guest, args, o) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "pershome-vfat-bench-"));
  try {
    const sticks = [];
    for (const [i, mb] of o.sticksMb.entries())
      sticks.push({ image: await makeFat32Stick(path.join(work, `s${i}.img`), mb) });
    const r = await runInVm({
      command: ["node", guest, ...args].join(" "),
      sticks,
      timeoutMs: o.timeoutMs,
      onOutput: (s) => process.stderr.write(s),
    });
    const bench = r.output.split("\n").filter((l) => l.startsWith("BENCH"));
    console.log(bench.join("\n") || r.output.slice(-3000));
    process.exitCode = r.exitCode;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
