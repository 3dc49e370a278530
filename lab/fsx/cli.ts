/**
 * `npm run fsx -- [--lower plain|exfat|vfat|raw] [--seed N] [--ops N] [--remount-every N]
 *                 [--runs N] [--vfat-options O|none] [--keep] [--json]`   (--help: USAGE below)
 *
 * Runs the fsx-like exerciser (lab/fsx/fsx.ts) on a fresh stick of the given kind with
 * `pershome mount` on it. `--lower vfat` on the host boots the micro-VM with a fresh FAT32
 * image and runs the same command inside it against the kernel's vfat driver (`--in-vm` is
 * what runs there), mounted with `--vfat-options` besides its name options (default `flush`,
 * as the login hook mounts it; `none` for none). `--runs N` runs seeds seed, seed+1, … Exit status 1 on any mismatch; the
 * report names the seed, the op and the ops that led there: replay with the same --seed and
 * --ops <op>.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { runFsx, type FsxResult } from "./fsx.js";
import { REPO, TARGET_KINDS, Target, vfatOptionsArg, type TargetKind } from "./target.js";

async function runOne(
  kind: TargetKind,
  seed: number,
  ops: number,
  every: number,
  keep: boolean,
  vfatOptions: string[],
  device?: string,
): Promise<FsxResult> {
  const t = new Target({ kind, keep, ...(device ? { device } : {}), sizeMb: 256, vfatOptions });
  await t.create();
  try {
    const r = await runFsx({
      dir: t.mnt,
      seed,
      ops,
      remountEvery: every,
      ...(kind !== "raw" ? { remount: () => t.remount() } : {}),
      progress: (l) => process.stderr.write(`${l}\n`),
    });
    if (r.mismatch && kind !== "raw")
      process.stderr.write(`--- the daemon's log (tail) ---\n${t.stderr().slice(-4000)}\n`);
    return r;
  } finally {
    await t.dispose();
    if (keep) process.stderr.write(`fsx: kept ${t.work}\n`);
  }
}

async function inVm(
  seed: number,
  ops: number,
  every: number,
  runs: number,
  vfatOptions: string[],
): Promise<number> {
  const { runInVm } = await import("../microvm/index.js");
  const { makeFat32Stick } = await import("../sticks/index.js");
  const img = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pershome-fsx-vm-")), "fat32.img");
  await makeFat32Stick(img, 512);
  const cmd = `node dist/lab/fsx/cli.js --in-vm --lower vfat --device /dev/sda --seed ${seed} --ops ${ops} --remount-every ${every} --runs ${runs} --vfat-options=${vfatOptions.join(",") || "none"} --json`;
  const r = await runInVm({
    command: cmd,
    sticks: [{ image: img }],
    cwd: REPO,
    timeoutMs: Math.max(600_000, ops * runs * 200),
    onOutput: (s: Buffer) => void process.stderr.write(s),
  });
  fs.rmSync(path.dirname(img), { recursive: true, force: true });
  return r.exitCode;
}

const USAGE = `npm run fsx -- [options]   (as root)

Seeded random writes, truncations, reads, renames, links, unlinks, chmods, fsyncs and remounts
on a pershome mount, each checked against a model of what it must show (docs/robustness.md,
section 2).

  --lower plain|exfat|vfat|raw  the stick: a folder (default), exFAT (exfat-fuse), FAT32 under
                                the kernel's vfat in the micro-VM, or the bare stick (no layer)
  --seed N                      the ops' seed (default: from the clock; printed)
  --ops N                       operations per run (default 20000)
  --remount-every N             remount after every N operations (default 1000)
  --runs N                      runs with seeds N, N+1, ... (default 1)
  --vfat-options O|none         vfat mount options besides the names' (default flush, as the
                                login hook mounts the stick)
  --keep                        keep the scratch folder
  --json                        also print each run's result as a JSON line
Exit status 1 on any mismatch; the report names the seed and the op to replay up to.
`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      help: { type: "boolean", short: "h", default: false },
      lower: { type: "string", default: "plain" },
      seed: { type: "string", default: String(Date.now() % 1_000_000) },
      ops: { type: "string", default: "20000" },
      "remount-every": { type: "string", default: "1000" },
      runs: { type: "string", default: "1" },
      device: { type: "string" },
      "vfat-options": { type: "string", default: "flush" },
      keep: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      "in-vm": { type: "boolean", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const kind = values.lower as TargetKind;
  if (!TARGET_KINDS.includes(kind)) throw new Error(`--lower wants one of ${TARGET_KINDS.join(", ")}`);
  const seed = Number(values.seed);
  const ops = Number(values.ops);
  const every = Number(values["remount-every"]);
  const runs = Number(values.runs);
  const vfatOptions = vfatOptionsArg(values["vfat-options"]);
  if (kind === "vfat" && !values["in-vm"]) return inVm(seed, ops, every, runs, vfatOptions);
  let failed = 0;
  let total = 0;
  const t0 = Date.now();
  for (let i = 0; i < runs; i++) {
    const r = await runOne(kind, seed + i, ops, every, values.keep, vfatOptions, values.device);
    total += r.ops;
    const line = `fsx: lower ${kind} seed ${r.seed}: ${r.ops} ops, ${r.remounts} remounts, ${(r.bytesWritten / 1048576).toFixed(0)} MiB written, ${(r.bytesRead / 1048576).toFixed(0)} MiB read, ${(r.ms / 1000).toFixed(1)} s, ${r.mismatch ? "MISMATCH" : "0 mismatches"}`;
    process.stdout.write(`${line}\n`);
    if (values.json) process.stdout.write(`fsx-json ${JSON.stringify({ lower: kind, ...r })}\n`);
    if (r.mismatch) {
      failed++;
      process.stdout.write(
        `MISMATCH at op ${r.mismatch.op} (seed ${r.seed}, lower ${kind}): ${r.mismatch.message}\n` +
          `replay: npm run fsx -- --lower ${kind} --seed ${r.seed} --ops ${r.mismatch.op} --remount-every ${every}\n` +
          `ops on the file concerned, and the last ones:\n${r.mismatch.log.join("\n")}\n`,
      );
    }
  }
  process.stdout.write(
    `fsx: ${runs} run(s), ${total} ops, ${failed} with a mismatch, ${((Date.now() - t0) / 1000).toFixed(1)} s\n`,
  );
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    const usage = (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS");
    process.stderr.write(
      `fsx: ${usage ? `${(e as Error).message} (see --help)` : ((e as Error).stack ?? String(e))}\n`,
    );
    process.exit(2);
  },
);
