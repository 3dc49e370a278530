/**
 * `npm run torture -- [--cuts N] [--seed S] [--lower exfat|plain|vfat] [--cut kill|pull|mix]
 *                     [--min-ms A] [--max-ms B] [--size-mb M] [--vfat-options O|none] [--keep]`
 *
 * The cut-point torture: a realistic home workload (lab/torture/workload.ts: editor saves by
 * rename, sqlite3 transactions, git commits, untar, chmod/symlink/hard-link churn, big
 * appends) runs on `pershome mount` over a real exFAT image (exfat-fuse on a loop device);
 * after a random time the layer and exfat-fuse are both killed with SIGKILL (the pull). Then:
 * `fsck.exfat -n` (and `-y` when it finds damage), plug the stick again, `pershome check`
 * (and `--repair` when it reports problems, which must leave a clean check), mount, and check
 * every promise in the workload's journal (no file whose fsync returned lost or changed, no
 * confirmed save lost, no synced prefix of a log changed, sqlite intact with every committed
 * row). The stick is kept from one cut to the next, so older files must survive every later
 * cut too. Exit status 1 when a cut broke an invariant.
 *
 * `--lower vfat`: the same over FAT32 under the kernel's vfat driver in the micro-VM, cut by
 * SIGKILL of the layer in the guest or by pulling the USB stick out of it (vfat.ts); the stick
 * mounted with `--vfat-options` besides its name options (default `flush`, as the login hook
 * mounts it; `none` for none).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Target, vfatOptionsArg, type TargetKind } from "../fsx/target.js";
import { cutPlan, makeTarball, recover, startWorkload, tool, type CutKind, type CutMode } from "./steps.js";

export interface CutResult {
  cut: number;
  kind: CutKind;
  delayMs: number;
  promises: number;
  /** "unclean": fsck.fat found only the marks any unclean unmount leaves (-a cleared them) */
  fsck: "clean" | "unclean" | "repaired" | "not checked" | "unrepairable";
  check: "clean" | "repaired" | "not repaired";
  violations: string[];
  notes: string[];
  seconds: number;
}

export interface TortureResult {
  cuts: CutResult[];
  violations: number;
  /** fsck found more than an unclean unmount leaves, and repaired it */
  fsckRepairs: number;
  checkRepairs: number;
  workloadErrors: Map<string, number>;
  seconds: number;
}

/** A run's tally before its first cut. */
export function emptyResult(): TortureResult {
  return { cuts: [], violations: 0, fsckRepairs: 0, checkRepairs: 0, workloadErrors: new Map(), seconds: 0 };
}

export interface TortureOptions {
  cuts: number;
  seed: number;
  kind: TargetKind;
  cut: CutMode;
  minMs: number;
  maxMs: number;
  sizeMb: number;
  keep: boolean;
  /** vfat: mount options beyond the names' (default: none; the CLI's default is the login hook's flush) */
  vfatOptions?: string[];
  log: (line: string) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One line per cut point, then its violations and notes. */
export function logCut(o: { cuts: number; log: (line: string) => void }, c: CutResult): void {
  o.log(
    `cut ${c.cut}/${o.cuts}: ${c.kind} after ${c.delayMs} ms; ${c.promises} promises; fsck ${c.fsck}; check ${c.check}; ${c.violations.length} violations; ${c.seconds.toFixed(1)} s`,
  );
  for (const v of c.violations.slice(0, 20)) o.log(`  VIOLATION ${v}`);
  for (const n of c.notes) o.log(`  note: ${n}`);
}

export async function runTorture(o: TortureOptions): Promise<TortureResult> {
  if (o.kind === "vfat") return (await import("./vfat.js")).runTortureVfat(o);
  if (o.cut !== "kill")
    throw new Error(`--cut ${o.cut} needs --lower vfat (a pull of a kernel-driven stick)`);
  const t0 = Date.now();
  const plan = cutPlan(o.seed, o.cuts, o.minMs, o.maxMs, "kill");
  const t = new Target({ kind: o.kind, sizeMb: o.sizeMb, keep: o.keep });
  const journal = path.join(t.work, "journal");
  fs.mkdirSync(t.work, { recursive: true });
  fs.writeFileSync(journal, "");
  const tarball = makeTarball(t.work);
  const result = emptyResult();
  await t.create();
  try {
    for (let cut = 1; cut <= o.cuts; cut++) {
      const c0 = Date.now();
      const { delayMs } = plan[cut - 1]!;
      const work = startWorkload(t.mnt, journal, cut, o.seed, tarball);
      await sleep(delayMs);
      const early = work.child.exitCode !== null;
      // the pull: the layer and the stick's driver at the same instant
      // The workload dies first, in the same instant: once the dead mounts are detached, its
      // paths would lead to the empty mountpoint beneath, and what it wrote there is no promise.
      const dead = work.kill();
      const killed = await t.crash();
      await dead;
      const violations: string[] = [];
      if (killed.length < (t.kind === "exfat" ? 2 : 1))
        violations.push(`only ${killed.length} daemon(s) killed`);
      if (early)
        violations.push(
          `the workload ended before the cut: ${work.stderr().trim().split("\n").slice(-3).join(" / ")}`,
        );

      let fsck: CutResult["fsck"] = "not checked";
      if (t.kind === "exfat") {
        const n = tool("fsck.exfat", ["-n", t.image!]);
        if (n.code === 0) fsck = "clean";
        else {
          // keep the evidence: the image as the pull left it, what fsck said, the journal
          const ev = path.join(os.tmpdir(), `pershome-torture-evidence-${o.seed}-${cut}`);
          fs.mkdirSync(ev, { recursive: true });
          tool("cp", ["--sparse=always", t.image!, path.join(ev, "pulled.img")]);
          fs.writeFileSync(path.join(ev, "fsck-n.txt"), n.out);
          fs.copyFileSync(journal, path.join(ev, "journal"));
          o.log(
            `  fsck.exfat -n found damage (exit ${n.code}); image, fsck output and journal kept in ${ev}`,
          );
          const y = tool("fsck.exfat", ["-y", t.image!]);
          fs.writeFileSync(path.join(ev, "fsck-y.txt"), y.out);
          fsck = y.code === 0 || y.code === 1 ? "repaired" : "unrepairable";
          if (fsck === "repaired") result.fsckRepairs++;
          else
            violations.push(
              `fsck.exfat -y could not repair the image (exit ${y.code}): ${y.out.slice(-500)}`,
            );
        }
      }
      const rec = await recover(t, journal);
      if (rec.check !== "clean") result.checkRepairs++;
      violations.push(...rec.violations);
      for (const [k, n] of rec.errors) result.workloadErrors.set(k, n);
      const cr: CutResult = {
        cut,
        kind: "kill",
        delayMs,
        promises: rec.promises,
        fsck,
        check: rec.check,
        violations,
        notes: rec.notes,
        seconds: (Date.now() - c0) / 1000,
      };
      result.cuts.push(cr);
      result.violations += violations.length;
      logCut(o, cr);
      if (violations.length) o.log(`  (the daemon's log tail)\n${t.stderr().slice(-2000)}`);
    }
  } catch (e) {
    o.log(
      `torture stopped: ${(e as Error).stack ?? String(e)}\n(the daemon's log tail)\n${t.stderr().slice(-2000)}`,
    );
    throw e;
  } finally {
    await t.dispose();
    if (o.keep) o.log(`kept ${t.work}`);
  }
  result.seconds = (Date.now() - t0) / 1000;
  return result;
}

const USAGE = `npm run torture -- [options]   (as root)

Runs a home workload on pershome and cuts it at random points (kill -9 of the layer, or on
FAT32 a pull of the stick), then checks the stick and every promise the workload was given.

  --lower exfat|plain|vfat  the stick: exFAT (exfat-fuse, default), a folder, or FAT32 under
                            the kernel's vfat in the micro-VM
  --cuts N                  cut points (default 20)
  --seed S                  the plan's seed (default: from the clock; printed at the end)
  --cut kill|pull|mix       how to cut (default kill; mix on vfat)
  --min-ms A --max-ms B     when to cut after the workload starts (default 300-5000; vfat 2000-10000)
  --size-mb M               the stick's size (default 1024; vfat 512)
  --vfat-options O|none     vfat mount options besides the names' (default flush, as the login
                            hook mounts the stick)
  --keep                    keep the scratch folder
Exit status 1 when a cut broke a promise. docs/robustness.md says what is checked.
`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      cuts: { type: "string", default: "20" },
      seed: { type: "string", default: String(Date.now() % 100_000) },
      lower: { type: "string", default: "exfat" },
      cut: { type: "string" },
      "min-ms": { type: "string" },
      "max-ms": { type: "string" },
      "size-mb": { type: "string" },
      "vfat-options": { type: "string", default: "flush" },
      keep: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  // In the micro-VM (TCG) everything runs several times slower: later cuts, a smaller stick.
  const vfat = values.lower === "vfat";
  const cut = (values.cut ?? (vfat ? "mix" : "kill")) as CutMode;
  if (!["kill", "pull", "mix"].includes(cut)) throw new Error("--cut wants kill, pull or mix");
  const res = await runTorture({
    cuts: Number(values.cuts),
    seed: Number(values.seed),
    kind: values.lower as TargetKind,
    cut,
    minMs: Number(values["min-ms"] ?? (vfat ? 2000 : 300)),
    maxMs: Number(values["max-ms"] ?? (vfat ? 10_000 : 5000)),
    sizeMb: Number(values["size-mb"] ?? (vfat ? 512 : 1024)),
    keep: values.keep,
    vfatOptions: vfatOptionsArg(values["vfat-options"]),
    log: (l) => process.stdout.write(`${l}\n`),
  });
  const per = res.cuts.length ? res.cuts.reduce((s, c) => s + c.seconds, 0) / res.cuts.length : 0;
  process.stdout.write(
    `torture: lower ${values.lower} seed ${values.seed}: ${res.cuts.length} cut points ` +
      `(${res.cuts.filter((c) => c.kind === "kill").length} kill -9, ${res.cuts.filter((c) => c.kind === "pull").length} pulls), ${res.violations} violations, ` +
      (vfat
        ? `fsck found only an unclean unmount ${res.cuts.filter((c) => c.fsck === "unclean").length}, `
        : "") +
      `fsck repaired ${res.fsckRepairs}, check --repair needed ${res.checkRepairs}, ` +
      `${per.toFixed(1)} s per cut point, ${res.seconds.toFixed(0)} s in all; ` +
      `max promises ${Math.max(0, ...res.cuts.map((c) => c.promises))}\n`,
  );
  if (res.workloadErrors.size)
    process.stdout.write(
      `workload step errors (after earlier cuts): ${JSON.stringify(Object.fromEntries(res.workloadErrors))}\n`,
    );
  return res.violations > 0 ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]).endsWith(path.join("torture", "cli.js")))
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      const usage = (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS");
      process.stderr.write(
        `torture: ${usage ? `${(e as Error).message} (see --help)` : ((e as Error).stack ?? String(e))}\n`,
      );
      process.exit(2);
    },
  );
