// The FAT32 lower: this host has no vfat driver, so the bench runs itself inside the QEMU
// micro-VM (lab/microvm: Debian's kernel, the host's / read-only as the guest's root) with a
// fresh FAT32 image plugged in as a USB stick, and hands back its rows. The guest runs the same
// workloads with the same candidates (bindfs, posixovl and pershome are the host's programs);
// under TCG every figure is several times the host's, so only the ratios inside the VM mean
// something (docs/benchmarks.md).
import fs from "node:fs";
import path from "node:path";
import { runInVm } from "../lab/microvm/index.js";
import { shellQuote } from "../lab/ltsp/machine.js";
import { makeFat32Stick } from "../lab/sticks/fat.js";
import { ROOT } from "./candidates.js";
import type { Row } from "./report.js";

/** What the guest's bench is asked to run (the host's options, less the lowers and login). */
export interface GuestRun {
  workloads: string[];
  candidates: string[];
  repeat: number;
  manyFiles: number;
  seqMb: number;
  tree: string;
  files: number;
  churn: number;
  /** where the guest's `--cpu-prof` profiles of the daemon go (named `fat32-*`), if asked */
  cpuProfDir?: string;
}

const HOURS = 3_600_000;

/** The guest's host name (lab/microvm/run.ts gives every micro-VM this one). */
export const VM_HOSTNAME = "microvm";

/** Makes the stick, boots the VM, runs the bench there on it, returns its rows (lower "fat32"). */
export async function runFat32InVm(
  run: GuestRun,
  work: string,
  sizeGb: number,
  say: (s: string) => void,
): Promise<{ rows: Row[]; machine: string }> {
  const image = path.join(work, "fat32.img");
  await makeFat32Stick(image, sizeGb * 1024, "BENCH");
  const out = path.join(work, "fat32-out");
  fs.mkdirSync(out, { recursive: true });
  const guestOut = "/bench-out";
  const args = [
    "--in-vm",
    guestOut,
    "--workloads",
    run.workloads.join(","),
    "--candidates",
    run.candidates.join(","),
    "--repeat",
    String(run.repeat),
    "--many",
    String(run.manyFiles),
    "--seq-mb",
    String(run.seqMb),
    "--tree",
    run.tree,
    "--files",
    String(run.files),
    "--churn",
    String(run.churn),
    ...(run.cpuProfDir ? ["--cpu-prof"] : []),
  ];
  let partial = "";
  try {
    const r = await runInVm({
      command: [process.execPath, path.join(ROOT, "dist/bench/main.js"), ...args].map(shellQuote).join(" "),
      sticks: [{ image }],
      shares: [{ hostPath: out, guestPath: guestOut }],
      memoryMb: 3072,
      timeoutMs: 12 * HOURS,
      // the guest's progress lines, as the host's own
      onOutput: (chunk) => {
        partial += chunk.toString();
        const lines = partial.split("\n");
        partial = lines.pop() ?? "";
        for (const l of lines) if (l.startsWith("[bench ")) say(`vm: ${l.replace(/^\[bench [^\]]*\] /, "")}`);
      },
    });
    if (r.exitCode !== 0)
      throw new Error(
        `the bench in the VM failed (exit ${r.exitCode}):\n${r.output.split("\n").slice(-30).join("\n")}`,
      );
    if (run.cpuProfDir) {
      const prof = path.join(out, "cpu-prof");
      fs.mkdirSync(run.cpuProfDir, { recursive: true });
      for (const f of fs.existsSync(prof) ? fs.readdirSync(prof) : [])
        fs.copyFileSync(path.join(prof, f), path.join(run.cpuProfDir, `fat32-${f}`));
    }
    return JSON.parse(fs.readFileSync(path.join(out, "rows.json"), "utf8")) as {
      rows: Row[];
      machine: string;
    };
  } finally {
    fs.rmSync(image, { force: true });
    fs.rmSync(out, { recursive: true, force: true });
  }
}
