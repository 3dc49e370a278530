/**
 * `npm run bench` end to end, small: every workload on every lower (plain, exFAT, and FAT32 in the
 * micro-VM, where counts and sizes are divided by 5) with every candidate, one repeat, a small
 * tree, 2,000 files for the mount and memory runs, a 20 MB sequential file.
 * Times are not checked here (a shared machine; docs/benchmarks.md has the figures): this checks
 * that the bench runs, that pershome completes every step on every lower, and that the report,
 * chart and results land where docs/benchmarks.md says.
 */
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { run } from "../support/run.js";

const BENCH = path.resolve("dist/bench/main.js");
const TREE = "/usr/include/linux/netfilter";

interface Row {
  lower: string;
  step: string;
  candidate: string;
  values: number[];
  status: string;
}

describe("npm run bench", () => {
  it("a bad option is told in one line with the usage (exit 64), and --help prints the usage", async () => {
    const bad = await run("node", [BENCH, "--lowers", "fat32ish"]);
    expect(bad.code).toBe(64);
    expect(bad.stderr).toMatch(/^--lowers: unknown fat32ish; choose from plain, exfat, fat32\n/);
    expect(bad.stderr).not.toMatch(/\n\s+at /); // no stack trace
    const help = await run("node", [BENCH, "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(
      /--workloads a,b +among files, tree, seq, rename, chmod, mount, memory, login/,
    );
  });

  it("runs every workload on every lower and writes the report, the chart and the results", async () => {
    const args = ["--quick", "--tree", TREE, "--vm-tree", TREE, "--many", "2000", "--seq-mb", "20"];
    const r = await run("node", [BENCH, ...args], { timeoutMs: 1_500_000 });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    const out = /^report: (.+)$/m.exec(r.stdout)?.[1];
    expect(out, r.stdout).toBeDefined();
    try {
      const results = JSON.parse(fs.readFileSync(path.join(out!, "results.json"), "utf8")) as { rows: Row[] };
      const ours = results.rows.filter((x) => x.candidate === "pershome");
      const steps = (lower: string): string[] => ours.filter((x) => x.lower === lower).map((x) => x.step);
      const expected = (files: string, churn: string, mb: number, many: string): string[] => [
        `create ${files}`,
        `ls -lR ${files}`,
        `read ${files}`,
        `delete ${files}`,
        "untar",
        "git add+commit",
        "git status x2",
        "git status after remount",
        `write ${mb} MB`,
        `read ${mb} MB`,
        `rename ${churn} x3`,
        `chmod+symlink ${churn}`,
        `mount ${many} files`,
        "peak RSS (VmHWM)",
        "files: write requests",
        "rename: write requests",
        "seq: MiB written",
        `create ${files}: FUSE requests`,
        "git status after remount: FUSE requests",
      ];
      for (const lower of ["plain", "exfat"])
        expect(steps(lower)).toEqual(expect.arrayContaining(expected("5k", "2k", 20, "2k")));
      // FAT32 under the kernel's vfat, in the VM: a fifth of the counts and sizes
      expect(steps("fat32")).toEqual(expect.arrayContaining(expected("1k", "400", 4, "0.4k")));
      expect(steps("stick")).toContain("login to home ready (pamtester)");
      for (const row of ours) {
        expect(row.status, `${row.lower} / ${row.step}`).toBe("ok");
        expect(row.values.length, `${row.lower} / ${row.step}`).toBe(1);
        expect(row.values[0], `${row.lower} / ${row.step}`).toBeGreaterThan(0);
      }
      // The stick's own counters saw the sequential file go to the stick (the right device counted).
      for (const [lower, mb] of [
        ["plain", 20],
        ["exfat", 20],
        ["fat32", 4],
      ] as const) {
        const seq = ours.find((x) => x.lower === lower && x.step === "seq: MiB written");
        expect(seq?.values[0], lower).toBeGreaterThanOrEqual(mb);
      }
      // The floor and bindfs ran the same steps on the lowers (the ratios' denominators).
      for (const c of ["floor", "bindfs", "posixovl"]) {
        expect(results.rows.filter((x) => x.candidate === c && x.step === "create 5k")).toHaveLength(2);
        expect(results.rows.filter((x) => x.candidate === c && x.step === "create 1k")).toHaveLength(1);
      }
      const report = fs.readFileSync(path.join(out!, "report.md"), "utf8");
      expect(report).toContain("![ratios](chart.svg)");
      expect(report).toMatch(/\| exfat \| create 5k \| s \|/);
      expect(report).toMatch(/\| fat32 \| create 1k \| s \|/);
      expect(report).toContain("fat32: in the QEMU micro-VM (TCG)");
      // pershome's requests per step, by opcode: a create of 5,000 files sends 5,000 creates
      expect(report).toMatch(/\| exfat \| create 5k \| \d+ \| [^|]*\bcreate 5000\b/);
      expect(report).not.toMatch(/\| create 5k: FUSE requests \| requests \|/); // not in the main table
      expect(fs.readFileSync(path.join(out!, "chart.svg"), "utf8")).toMatch(/^<svg[\s\S]*<\/svg>\s*$/);
      expect(fs.readFileSync(path.join(out!, "machine.txt"), "utf8")).toMatch(/^nproc: \d+/);
    } finally {
      fs.rmSync(out!, { recursive: true, force: true });
    }
  }, 1_500_000);
});
