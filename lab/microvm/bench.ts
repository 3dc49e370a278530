#!/usr/bin/env node
// Measures what decides how much of the test suite can run inside the micro-VM under TCG:
//   node dist/lab/microvm/bench.js [--runs N]
// cold initramfs build, boot-to-command, node startup in the guest, 1000 files on vfat.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { makeFat32Stick } from "../sticks/fat.js";
import { ensureInitramfs } from "./initramfs.js";
import { findGuestKernel } from "./kernel.js";
import { runInVm } from "./run.js";
import { bootableKernel } from "./vmlinux.js";

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const med = s[Math.floor(s.length / 2)] ?? NaN;
  return `median ${Math.round(med)} ms (min ${Math.round(s[0] ?? NaN)}, max ${Math.round(s.at(-1) ?? NaN)}, n=${s.length})`;
}

/** Runs `snippet` in the guest N times, timing each with the guest clock; prints ms per run. */
function guestTimer(label: string, snippet: string, n: number): string {
  return [
    `i=0; while [ $i -lt ${n} ]; do`,
    `  s=$(date +%s%N); ${snippet}; e=$(date +%s%N)`,
    `  echo "T ${label} $(( (e - s) / 1000000 ))"; i=$((i + 1))`,
    "done",
  ].join("\n");
}

function collect(output: string, label: string): number[] {
  return [...output.matchAll(new RegExp(`^T ${label} (\\d+)$`, "gm"))].map((m) => Number(m[1]));
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: "string", default: "5" } } });
  const runs = Math.max(1, Number(values.runs));
  const work = mkdtempSync(join(tmpdir(), "microvm-bench-"));
  try {
    const kernel = findGuestKernel();
    const cold = ensureInitramfs({ kernel, cacheDir: join(work, "cache") });
    console.log(`kernel ${kernel.version}; initramfs ${cold.modules.length} modules`);
    console.log(`cold initramfs build: ${Math.round(cold.buildMs)} ms`);
    let t = performance.now();
    bootableKernel(kernel.image, join(work, "cache"));
    console.log(`cold vmlinux extraction: ${Math.round(performance.now() - t)} ms`);

    const boot: number[] = [];
    const guest: number[] = [];
    const total: number[] = [];
    for (let i = 0; i < runs; i++) {
      const r = await runInVm({ command: "true" });
      boot.push(r.bootMs);
      guest.push(r.guestBootMs);
      total.push(r.totalMs);
    }
    console.log(`boot to command (host clock): ${stats(boot)}`);
    console.log(`  of which guest kernel+init:  ${stats(guest)}`);
    console.log(`whole run of 'true':          ${stats(total)}`);

    const img = await makeFat32Stick(join(work, "stick.img"), 256);
    const files = `node -e 'const fs=require("fs"); fs.mkdirSync(process.argv[1]); for (let i=0;i<1000;i++) fs.writeFileSync(process.argv[1]+"/f"+i+".txt", "hello "+i)'`;
    t = performance.now();
    const r = await runInVm({
      sticks: [{ image: img }],
      timeoutMs: 900_000,
      command: [
        guestTimer("node0", "node -e 0", runs),
        guestTimer("nodever", `node -e 'console.log(process.version)' >/dev/null`, runs),
        guestTimer("nodefs", `node -e 'require("fs").readdirSync("/work/main")' >/dev/null`, runs),
        "mount -t vfat -o utf8,shortname=mixed /dev/sda /mnt",
        guestTimer("files", `${files} /mnt/a`, 1),
        guestTimer("sync", "sync", 1),
        guestTimer("umount", "umount /mnt", 1),
        "mount -t vfat -o utf8,shortname=mixed,flush /dev/sda /mnt",
        guestTimer("filesflush", `${files} /mnt/b`, 1),
        guestTimer("umountflush", "umount /mnt", 1),
      ].join("\n"),
    });
    if (r.exitCode !== 0) throw new Error(`guest benchmark failed:\n${r.output}`);
    console.log(`node -e 0 in the guest:                         ${stats(collect(r.output, "node0"))}`);
    console.log(`node -e 'console.log(process.version)':         ${stats(collect(r.output, "nodever"))}`);
    console.log(`node -e 'require("fs").readdirSync(...)':        ${stats(collect(r.output, "nodefs"))}`);
    console.log(`1000 files on vfat (node, incl. startup):       ${stats(collect(r.output, "files"))}`);
    console.log(`  then sync:                                    ${stats(collect(r.output, "sync"))}`);
    console.log(`  then umount:                                  ${stats(collect(r.output, "umount"))}`);
    console.log(`1000 files on vfat mounted with -o flush:       ${stats(collect(r.output, "filesflush"))}`);
    console.log(`  then umount:                                  ${stats(collect(r.output, "umountflush"))}`);
    console.log(`(guest benchmark run: ${Math.round(performance.now() - t)} ms)`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
