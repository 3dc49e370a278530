/**
 * `npm run torture -- [--cuts N] [--seed S] [--lower exfat|plain] [--min-ms A] [--max-ms B]
 *                     [--size-mb M] [--keep]`
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
 */
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { rng } from "../crash/model.js";
import { CLI, REPO, Target, type TargetKind } from "../fsx/target.js";
import { verifyJournal } from "./verify.js";

export interface CutResult {
  cut: number;
  delayMs: number;
  promises: number;
  fsck: "clean" | "repaired" | "not checked" | "unrepairable";
  check: "clean" | "repaired" | "not repaired";
  violations: string[];
  notes: string[];
  seconds: number;
}

export interface TortureResult {
  cuts: CutResult[];
  violations: number;
  fsckRepairs: number;
  checkRepairs: number;
  workloadErrors: Map<string, number>;
  seconds: number;
}

export interface TortureOptions {
  cuts: number;
  seed: number;
  kind: TargetKind;
  minMs: number;
  maxMs: number;
  sizeMb: number;
  keep: boolean;
  log: (line: string) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function tool(cmd: string, args: string[]): { code: number; out: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 300_000 });
  return { code: r.status ?? -1, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

/** A small tree to untar: nested folders, a few hundred KiB. */
function makeTarball(work: string): string {
  const src = path.join(work, "tree-src");
  for (let d = 0; d < 4; d++) {
    const dir = path.join(src, `pkg-${d}`, "src", "lib");
    fs.mkdirSync(dir, { recursive: true });
    for (let f = 0; f < 8; f++)
      fs.writeFileSync(path.join(dir, `mod${f}.js`), `// module ${d}.${f}\n`.repeat(200 + f * 50), {
        mode: 0o644,
      });
    fs.writeFileSync(path.join(src, `pkg-${d}`, "run.sh"), "#!/bin/sh\necho run\n", { mode: 0o755 });
  }
  const tarball = path.join(work, "tree.tar");
  const r = tool("tar", ["-cf", tarball, "-C", src, "."]);
  if (r.code !== 0) throw new Error(`tar: ${r.out}`);
  return tarball;
}

export async function runTorture(o: TortureOptions): Promise<TortureResult> {
  const t0 = Date.now();
  const r = rng(o.seed);
  const t = new Target({ kind: o.kind, sizeMb: o.sizeMb, keep: o.keep });
  const journal = path.join(t.work, "journal");
  fs.mkdirSync(t.work, { recursive: true });
  fs.writeFileSync(journal, "");
  const tarball = makeTarball(t.work);
  const result: TortureResult = {
    cuts: [],
    violations: 0,
    fsckRepairs: 0,
    checkRepairs: 0,
    workloadErrors: new Map(),
    seconds: 0,
  };
  await t.create();
  try {
    for (let cut = 1; cut <= o.cuts; cut++) {
      const c0 = Date.now();
      const delayMs = Math.round(o.minMs + r() * (o.maxMs - o.minMs));
      const work = spawn(
        process.execPath,
        [path.join(REPO, "dist/lab/torture/workload.js"), t.mnt, journal, String(cut), String(o.seed)],
        // its own process group: the cut kills it with whatever it runs (sqlite3, git, tar)
        {
          stdio: ["ignore", "ignore", "pipe"],
          env: { ...process.env, TORTURE_TARBALL: tarball },
          detached: true,
        },
      );
      let werr = "";
      work.stderr.setEncoding("utf8").on("data", (d: string) => (werr = (werr + d).slice(-4000)));
      const exited = new Promise<void>((res) => work.once("exit", () => res()));
      await sleep(delayMs);
      const early = work.exitCode !== null;
      // the pull: the layer and the stick's driver at the same instant
      // The workload dies first, in the same instant: once the dead mounts are detached, its
      // paths would lead to the empty mountpoint beneath, and what it wrote there is no promise.
      try {
        process.kill(-work.pid!, "SIGKILL");
      } catch {
        /* already gone */
      }
      const killed = await t.crash();
      await exited;
      const violations: string[] = [];
      if (killed.length < (t.kind === "exfat" ? 2 : 1))
        violations.push(`only ${killed.length} daemon(s) killed`);
      if (early)
        violations.push(
          `the workload ended before the cut: ${werr.trim().split("\n").slice(-3).join(" / ")}`,
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
      t.attach();
      let check: CutResult["check"] = "clean";
      const c1 = tool(process.execPath, [CLI, "check", t.root, "--force"]);
      if (c1.code !== 0) {
        const rep = tool(process.execPath, [CLI, "check", "--repair", t.root, "--force"]);
        const c2 = tool(process.execPath, [CLI, "check", t.root, "--force"]);
        result.checkRepairs++;
        check = c2.code === 0 ? "repaired" : "not repaired";
        if (c2.code !== 0)
          violations.push(
            `pershome check after --repair (exit ${rep.code}) still reports problems: ${c2.out.trim().split("\n").slice(0, 6).join(" / ")}`,
          );
      }
      let verdict = {
        promises: 0,
        violations: [] as string[],
        notes: [] as string[],
        errors: new Map<string, number>(),
      };
      try {
        await t.mount();
        verdict = verifyJournal(fs.readFileSync(journal, "utf8"), t.mnt);
      } catch (e) {
        violations.push(`the layer does not mount: ${(e as Error).message.slice(0, 500)}`);
      }
      violations.push(...verdict.violations);
      for (const [k, n] of verdict.errors) result.workloadErrors.set(k, n);
      const cr: CutResult = {
        cut,
        delayMs,
        promises: verdict.promises,
        fsck,
        check,
        violations,
        notes: verdict.notes,
        seconds: (Date.now() - c0) / 1000,
      };
      result.cuts.push(cr);
      result.violations += violations.length;
      o.log(
        `cut ${cut}/${o.cuts}: after ${delayMs} ms; ${verdict.promises} promises; fsck ${fsck}; check ${check}; ${violations.length} violations; ${cr.seconds.toFixed(1)} s`,
      );
      for (const v of violations.slice(0, 20)) o.log(`  VIOLATION ${v}`);
      for (const n of verdict.notes) o.log(`  note: ${n}`);
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

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      cuts: { type: "string", default: "20" },
      seed: { type: "string", default: String(Date.now() % 100_000) },
      lower: { type: "string", default: "exfat" },
      "min-ms": { type: "string", default: "300" },
      "max-ms": { type: "string", default: "5000" },
      "size-mb": { type: "string", default: "1024" },
      keep: { type: "boolean", default: false },
    },
  });
  const res = await runTorture({
    cuts: Number(values.cuts),
    seed: Number(values.seed),
    kind: values.lower as TargetKind,
    minMs: Number(values["min-ms"]),
    maxMs: Number(values["max-ms"]),
    sizeMb: Number(values["size-mb"]),
    keep: values.keep,
    log: (l) => process.stdout.write(`${l}\n`),
  });
  const per = res.cuts.length ? res.cuts.reduce((s, c) => s + c.seconds, 0) / res.cuts.length : 0;
  process.stdout.write(
    `torture: lower ${values.lower} seed ${values.seed}: ${res.cuts.length} cut points, ${res.violations} violations, ` +
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
      process.stderr.write(`torture: ${(e as Error).stack ?? String(e)}\n`);
      process.exit(2);
    },
  );
