/**
 * Crash states on the host (issue 7, docs/robustness.md): a home workload runs through the
 * real layer on a recording Lower; crash states are rebuilt from prefixes of the record
 * under the FAT model (model.ts); each is written out as a plain directory, opened with the
 * layer, checked against what the workload was promised, then checked and repaired with
 * `pershome check` and opened again.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { NodeLower } from "../../src/fs/lower.js";
import { RecordingLower } from "../../src/fs/recording-lower.js";
import { checkHome, problems } from "../../src/sticktools/check.js";
import { repairHome } from "../../src/sticktools/repair.js";
import { HomeDriver, sha, type ViewEntry, type ViewKind } from "./driver.js";
import { CrashModel, materialise, rng } from "./model.js";

/** One acceptable look of a promised entry. */
export type Alt =
  | { absent: true }
  | {
      kind: ViewKind;
      perms?: number[];
      sha?: string;
      prefix?: { len: number; sha: string };
      target?: string;
    };

interface Promise {
  /** events recorded when the promise starts to hold */
  at: number;
  key: string;
  /** the entry may be under any of these paths */
  paths: string[];
  alts: Alt[];
}

/** What a workload was told is durable, as it went. */
export class Promises {
  readonly list: Promise[] = [];
  private readonly last = new Map<string, Promise>();
  constructor(
    private readonly d: HomeDriver,
    private readonly clock: () => number,
  ) {}

  /** From now on, `key` is at one of `paths`, looking like one of `alts`. */
  set(key: string, paths: string[], alts: Alt[]): void {
    const p = { at: this.clock(), key, paths, alts };
    this.list.push(p);
    this.last.set(key, p);
  }

  /** The entry as the layer shows it now (after its fsync returned): exactly this. */
  exact(key: string, p: string): void {
    this.set(key, [p], [altOf(this.d.view(p))]);
  }

  /** Before a change that is not durable yet: the old look, or any of these. */
  widen(key: string, alts: Alt[], paths?: string[]): void {
    const prev = this.last.get(key);
    this.set(key, [...new Set([...(prev?.paths ?? []), ...(paths ?? [])])], [...(prev?.alts ?? []), ...alts]);
  }

  /** No promise any more (the workload removed it on purpose). */
  drop(key: string): void {
    this.set(key, [], []);
  }

  /** The promises in force after `cut` events. */
  at(cut: number): Promise[] {
    const now = new Map<string, Promise>();
    for (const p of this.list) if (p.at <= cut) now.set(p.key, p);
    return [...now.values()].filter((p) => p.paths.length > 0);
  }
}

export function altOf(v: ViewEntry | null): Alt {
  if (!v) return { absent: true };
  return {
    kind: v.kind,
    perms: [v.perm],
    ...(v.sha ? { sha: v.sha } : {}),
    ...(v.target ? { target: v.target } : {}),
  };
}

function matches(v: ViewEntry | undefined, a: Alt): boolean {
  if ("absent" in a) return v === undefined;
  if (!v || v.kind !== a.kind) return false;
  if (a.perms && !a.perms.includes(v.perm)) return false;
  if (a.sha && v.sha !== a.sha) return false;
  if (a.target !== undefined && v.target !== a.target) return false;
  if (
    a.prefix &&
    (!v.data || v.data.length < a.prefix.len || sha(v.data.subarray(0, a.prefix.len)) !== a.prefix.sha)
  )
    return false;
  return true;
}

function showView(v: ViewEntry | undefined): string {
  if (!v) return "absent";
  return `${v.kind} ${v.perm.toString(8)} ${v.size}B${v.sha ? " " + v.sha : ""}${v.target ? " -> " + v.target : ""}`;
}

function checkPromises(view: Map<string, ViewEntry>, promised: Promise[]): string[] {
  const out: string[] = [];
  for (const p of promised) {
    const ok = p.paths.some((path) => p.alts.some((a) => matches(view.get(path), a)));
    if (!ok)
      out.push(
        `${p.key}: ${p.paths.map((path) => `${path} is ${showView(view.get(path))}`).join(", ")}; promised ${JSON.stringify(p.alts)}`,
      );
  }
  return out;
}

// ---- the workload -----------------------------------------------------------------------

const bytes = (rand: () => number, n: number): Buffer => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (rand() * 256) | 0;
  return b;
};
const text = (s: string, times: number): Buffer => Buffer.from(s.repeat(times));

/** A home as it was when the stick was last unmounted cleanly. */
export function baselineHome(d: HomeDriver): void {
  const r = rng(7);
  d.mkdir("Documents");
  d.mkdir(".ssh", 0o700);
  d.mkdir("src");
  d.writeFile("Documents/report.odt", bytes(r, 20_000), { sync: true });
  d.writeFile("Documents/notes.txt", text("first notes\n", 50), { mode: 0o600, sync: true });
  d.writeFile(".ssh/id_ed25519", text("-----BEGIN OPENSSH PRIVATE KEY-----\n", 10), {
    mode: 0o600,
    sync: true,
  });
  d.writeFile(".bashrc", text("alias ll='ls -l'\n", 3), { sync: true });
  d.writeFile("src/main.c", text("int main(void) { return 0; }\n", 4), { sync: true });
  d.writeFile("src/build.sh", text("#!/bin/sh\ncc main.c\n", 1), { mode: 0o755, sync: true });
  d.symlink(".bashrc", ".profile");
  d.writeFile("Documents/Kopie: März?.txt", text("ä", 300), { sync: true });
  d.unmount();
  for (const dir of ["", "Documents", ".ssh", "src"]) d.fsyncdir(dir);
}

export const BASELINE_PATHS = [
  "Documents",
  ".ssh",
  "src",
  "Documents/report.odt",
  "Documents/notes.txt",
  ".ssh/id_ed25519",
  ".bashrc",
  "src/main.c",
  "src/build.sh",
  ".profile",
  "Documents/Kopie: März?.txt",
];

/**
 * A day of work in a home: editor saves by rename, new files fsync'd, an sqlite-like
 * database with a journal, a log with big appends, chmod churn (enough to compact a log),
 * truncate-and-rewrite, hard links, git's link-then-unlink, symlinks (one replaced by ln -sfn), a fifo, an untarred tree, a directory moved,
 * deletions, xattrs. Each durable step is promised; each change to a promised entry first
 * widens what may be found.
 */
export function homeWorkload(d: HomeDriver, P: Promises): void {
  const r = rng(42);
  const C = fs.constants;

  // an editor saving notes.txt three times: temp file, fsync, rename over, fsync the folder
  for (let i = 0; i < 3; i++) {
    const body = text(`notes version ${i}\n`, 40 + i * 30);
    d.writeFile("Documents/.notes.txt.swp", body, { mode: 0o600, sync: true });
    // without atomic rename-over the new data may be left under the temporary name
    P.widen(
      "Documents/notes.txt",
      [{ kind: "f", perms: [0o600], sha: sha(body) }],
      ["Documents/.notes.txt.swp"],
    );
    d.rename("Documents/.notes.txt.swp", "Documents/notes.txt");
    d.fsyncdir("Documents");
    P.exact("Documents/notes.txt", "Documents/notes.txt");
    if (i === 1) d.tick();
  }

  // new drafts, each fsync'd once written (and their folder's metadata with them)
  for (let i = 0; i < 5; i++) {
    const p = `Documents/draft-${i}.txt`;
    d.writeFile(p, bytes(r, 1000 + i * 9000), { mode: i % 2 ? 0o640 : 0o600, sync: true });
    P.exact(p, p);
    if (i === 2) d.tick();
  }

  // synced files moved into another folder (mv draft-3.txt draft-4.txt ../src/): each keeps
  // its content and mode on whichever side of the move a pull leaves it
  for (const i of [3, 4]) {
    P.widen(`Documents/draft-${i}.txt`, [], [`src/draft-${i}.txt`]);
    d.rename(`Documents/draft-${i}.txt`, `src/draft-${i}.txt`);
  }
  d.tick();
  d.fsyncdir("src");
  d.fsyncdir("Documents");
  for (const i of [3, 4]) P.exact(`Documents/draft-${i}.txt`, `src/draft-${i}.txt`);

  // a database: pages overwritten in place behind a journal
  const db = "Documents/app.db";
  d.writeFile(db, bytes(r, 4 * 4096), { mode: 0o600, sync: true });
  P.exact(db, db);
  for (let tx = 0; tx < 3; tx++) {
    d.writeFile(`${db}-journal`, bytes(r, 4096 + 512), { sync: true });
    d.fsyncdir("Documents");
    P.widen(db, [{ kind: "f", perms: [0o600] }]);
    const h = d.openFile(db, C.O_WRONLY);
    d.write(h, bytes(r, 4096), 4096 * (tx % 4));
    d.write(h, bytes(r, 4096), 4096 * 4 + tx * 4096); // the database grows
    d.fsync(h);
    d.close(h);
    d.unlink(`${db}-journal`);
    d.fsyncdir("Documents");
    P.exact(db, db);
  }

  // a log growing by big appends, fsync'd every other time
  d.mkdir(".cache");
  d.fsyncdir("");
  d.writeFile(".cache/session.log", Buffer.alloc(0), { mode: 0o600, sync: true });
  P.exact(".cache/session.log", ".cache/session.log");
  let logged = Buffer.alloc(0);
  for (let i = 0; i < 6; i++) {
    const chunk = text(`entry ${i} `, 3000 + i * 700);
    P.widen(".cache/session.log", [
      { kind: "f", perms: [0o600], prefix: { len: logged.length, sha: sha(logged) } },
    ]);
    d.append(".cache/session.log", chunk, i % 2 === 1);
    logged = Buffer.concat([logged, chunk]);
    if (i % 2 === 1) P.exact(".cache/session.log", ".cache/session.log");
  }

  // chmod churn over many small files, enough appended records to compact the folder's log
  d.mkdir("churn");
  d.fsyncdir("");
  const churn = Array.from({ length: 16 }, (_, i) => `churn/file${i}`);
  for (const [i, p] of churn.entries()) {
    d.writeFile(p, text(`small file ${i}\n`, 3), { mode: 0o600, sync: true });
    P.exact(p, p);
  }
  for (let round = 0; round < 20; round++) {
    for (const [i, p] of churn.entries()) {
      const mode = (round + i) % 2 ? 0o640 : 0o600;
      P.widen(p, [{ kind: "f", perms: [mode] }]);
      d.chmod(p, mode);
    }
    d.tick();
  }
  for (const p of churn) {
    d.syncFile(p);
    P.exact(p, p);
  }

  // truncate and rewrite in place (no rename): only the mode is safe until the fsync
  P.widen("Documents/report.odt", [{ kind: "f", perms: [0o644] }]);
  d.writeFile("Documents/report.odt", bytes(r, 30_000), { sync: true });
  P.exact("Documents/report.odt", "Documents/report.odt");

  // a hard link, then a second one in another folder; then one name goes
  // the new name is promised only once its folder is synced
  P.set("link:draft-0", ["Documents/draft-0.hardlink"], [{ absent: true }, { kind: "f" }]);
  d.link("Documents/draft-0.txt", "Documents/draft-0.hardlink");
  d.fsyncdir("Documents");
  P.exact("link:draft-0", "Documents/draft-0.hardlink");
  P.exact("Documents/draft-0.txt", "Documents/draft-0.txt");
  d.link("Documents/draft-0.txt", "src/draft-0.copy");
  d.fsyncdir("src");
  P.exact("link:draft-0b", "src/draft-0.copy");
  P.widen("link:draft-0", [{ absent: true }]);
  d.unlink("Documents/draft-0.hardlink");
  d.fsyncdir("Documents");
  P.drop("link:draft-0");
  // writing through one name of a hard-linked file
  P.widen("Documents/draft-0.txt", [{ kind: "f", perms: [0o600] }]);
  P.widen("link:draft-0b", [{ kind: "f", perms: [0o600] }]);
  d.append("Documents/draft-0.txt", text("more\n", 100), true);
  P.exact("Documents/draft-0.txt", "Documents/draft-0.txt");
  P.exact("link:draft-0b", "src/draft-0.copy");

  // git's objects: a temporary file link()ed to its final name, then the temporary one
  // unlinked (for the stick, a rename written behind). Written with an fsync (git's
  // core.fsync=loose-object), an object keeps its content under one name or the other, and
  // under the final one once the folder is synced; written without, only its name is promised.
  d.mkdir(".git-objects");
  d.fsyncdir("");
  const objects = [0, 1, 2].map((i) => ({
    size: 300 + i * 2000,
    key: `object:${i}`,
    tmp: `.git-objects/tmp_obj_${i}`,
    final: `.git-objects/obj${i}`,
    synced: i < 2,
  }));
  for (const o of objects) {
    d.writeFile(o.tmp, bytes(r, o.size), { mode: 0o444, sync: o.synced });
    if (o.synced) {
      P.exact(o.key, o.tmp);
      P.widen(o.key, [], [o.final]);
    } else {
      P.set(o.key, [o.final], [{ absent: true }, { kind: "f" }]);
    }
    d.link(o.tmp, o.final);
    d.unlink(o.tmp);
  }
  d.fsyncdir(".git-objects");
  for (const o of objects) {
    if (o.synced) P.exact(o.key, o.final);
    else P.set(o.key, [o.final], [{ kind: "f" }]);
  }

  // symlinks and a fifo
  d.symlink("Documents/report.odt", "report");
  d.mkfifo(".cache/fifo", 0o600);
  d.fsyncdir("");
  d.fsyncdir(".cache");
  P.exact("report", "report");
  P.exact(".cache/fifo", ".cache/fifo");
  // ln -sfn: a new link under a temporary name, renamed over the old one; neither link's
  // stored copy of its target is fsync'd (the target is in the record: format rule 3)
  P.widen("report", [{ kind: "l", perms: [0o777], target: "Documents/notes.txt" }], [".report.tmp"]);
  d.symlink("Documents/notes.txt", ".report.tmp");
  d.rename(".report.tmp", "report");
  d.fsyncdir("");
  P.exact("report", "report");

  // an untarred tree, never fsync'd; then moved as a whole
  d.mkdir("proj");
  for (let i = 0; i < 4; i++) {
    d.mkdir(`proj/d${i}`);
    for (let j = 0; j < 6; j++)
      d.writeFile(`proj/d${i}/f${j}.c`, text(`/* ${i} ${j} */\n`, 20 + j), { mode: j === 0 ? 0o755 : 0o644 });
  }
  d.tick();
  d.rename("proj", "project");
  d.tick();
  // then kept, as `sync -f` would: the move and the folders synced, then one file. Its record
  // is in its folder's first log, written by the flushes above without an fsync; the file's
  // fsync makes that log durable.
  d.fsyncdir("");
  d.fsyncdir("project");
  d.syncFile("project/d1/f0.c");
  P.exact("project/d1/f0.c", "project/d1/f0.c");

  // the key's folder gets a new key, saved carefully, and an xattr on the notes
  d.writeFile(".ssh/id_ed25519.tmp", text("-----NEW KEY-----\n", 12), { mode: 0o600, sync: true });
  P.widen(
    ".ssh/id_ed25519",
    [{ kind: "f", perms: [0o600], sha: sha(text("-----NEW KEY-----\n", 12)) }],
    [".ssh/id_ed25519.tmp"],
  );
  d.rename(".ssh/id_ed25519.tmp", ".ssh/id_ed25519");
  d.fsyncdir(".ssh");
  P.exact(".ssh/id_ed25519", ".ssh/id_ed25519");
  d.setxattr("Documents/notes.txt", "user.tag", Buffer.from("blue"));
  d.syncFile("Documents/notes.txt");

  // deletions: some churn files, then a case-only rename and a mode on a directory
  for (const p of churn.slice(0, 5)) {
    P.widen(p, [{ absent: true }]);
    d.unlink(p);
  }
  d.fsyncdir("churn");
  for (const p of churn.slice(0, 5)) P.drop(p);
  P.widen("src/main.c", [{ absent: true }], ["src/Main.c"]);
  d.rename("src/main.c", "src/Main.c");
  d.fsyncdir("src");
  P.exact("src/main.c", "src/Main.c");
  P.widen("src", [{ kind: "d", perms: [0o700] }]);
  d.chmod("src", 0o700);
  d.fsyncdir("");
  P.exact("src", "src");
  d.unmount();
}

// ---- the run ------------------------------------------------------------------------------

export interface CrashRunOptions {
  seed: number;
  /** crash states to check (sampled over the cuts); every cut gets at least its "none" state */
  states: number;
  /** scratch directory (a fresh one under the system's temp dir if not given) */
  work?: string;
  /** stop collecting after this many violations */
  maxViolations?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface Violation {
  cut: number;
  event: string;
  state: string;
  stage: "layer" | "promise" | "check" | "repair" | "after-repair";
  problem: string;
}

export interface CrashRunResult {
  events: number;
  cuts: number;
  states: number;
  statesWithFindings: number;
  findings: Map<string, number>;
  repaired: number;
  /** states where a promise held only once `check --repair` had run */
  keptOnlyAfterRepair: number;
  violations: Violation[];
  seconds: number;
}

/** Runs `fn` with the layer's own log lines (expected on damaged states) held back. */
function quietly<T>(fn: () => T): T {
  const write = process.stderr.write;
  const re = /^pershome\[\d+\] (warn|info|debug): /;
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
    if (re.test(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString())) return true;
    return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean).call(
      process.stderr,
      chunk,
      ...rest,
    );
  }) as typeof process.stderr.write;
  try {
    return fn();
  } finally {
    process.stderr.write = write;
  }
}

/** Records the workload once: the baseline home, the record and the promises. */
export function recordWorkload(
  work: string,
  workload: (d: HomeDriver, P: Promises) => void = homeWorkload,
  baseline: (d: HomeDriver) => void = baselineHome,
  baselinePaths: string[] = BASELINE_PATHS,
): { rec: RecordingLower; P: Promises; base: string } {
  const base = path.join(work, "recorded", "pershome");
  fs.mkdirSync(base, { recursive: true });
  HomeDriver.prepare(base);
  const lowerRoot = Buffer.from(base).toString("latin1");
  const first = new HomeDriver(new NodeLower(lowerRoot));
  baseline(first);
  const rec = new RecordingLower(new NodeLower(lowerRoot));
  const d = new HomeDriver(rec);
  const P = new Promises(d, () => rec.events.length);
  for (const p of baselinePaths) P.exact(p, p);
  workload(d, P);
  return { rec, P, base };
}

/** Checks one crash state; returns the problems. `dir` is its pershome directory. */
export function checkState(
  dir: string,
  promised: Promise[],
): {
  problems: { stage: Violation["stage"]; problem: string }[];
  findings: string[];
  repaired: boolean;
  keptOnlyAfterRepair: boolean;
} {
  const out: { stage: Violation["stage"]; problem: string }[] = [];
  /** promises the layer alone did not keep: fine only if check reports something to repair */
  const beforeRepair: { stage: Violation["stage"]; problem: string }[] = [];
  const root = Buffer.from(dir).toString("latin1");
  const look = (stage: "layer" | "after-repair"): void => {
    let walked: ReturnType<HomeDriver["walk"]>;
    try {
      walked = new HomeDriver(new NodeLower(root)).walk();
    } catch (err) {
      out.push({
        stage,
        problem: `the layer could not open the home: ${(err as Error).stack ?? String(err)}`,
      });
      return;
    }
    for (const p of walked.problems) out.push({ stage, problem: p });
    for (const p of checkPromises(walked.view, promised))
      if (stage === "layer") beforeRepair.push({ stage: "promise", problem: p });
      else out.push({ stage: "after-repair", problem: p });
  };
  look("layer");
  const report = checkHome(dir);
  const findings = problems(report).map((f) => f.kind);
  let repaired = false;
  // a promise kept only after `check --repair` (docs/format.md rule 5) is no violation when
  // check says there is something to repair; when it says all is well, it is one
  if (findings.length === 0) out.push(...beforeRepair);
  if (findings.length > 0) {
    const res = repairHome(report);
    repaired = true;
    for (const f of res.failed)
      out.push({ stage: "repair", problem: `${f.finding.kind} ${f.finding.path}: ${f.why}` });
    const again = problems(checkHome(dir));
    for (const f of again)
      out.push({ stage: "check", problem: `after --repair: ${f.kind} ${f.path}: ${f.message}` });
    look("after-repair");
  }
  return {
    problems: out,
    findings,
    repaired,
    keptOnlyAfterRepair: findings.length > 0 && beforeRepair.length > 0,
  };
}

function describeEvent(e: RecordingLower["events"][number] | undefined): string {
  if (!e) return "(end)";
  const { op, ...rest } = e as { op: string } & Record<string, unknown>;
  const shown = Object.entries(rest)
    .map(
      ([k, v]) =>
        `${k}=${Buffer.isBuffer(v) ? `<${v.length} bytes>` : typeof v === "string" ? JSON.stringify(Buffer.from(v, "latin1").toString("utf8")) : String(v)}`,
    )
    .join(" ");
  return `${op} ${shown}`;
}

/**
 * Async only to let the event loop run between states: a long run held it for minutes, and
 * vitest then reported "Timeout calling onTaskUpdate" (an error, although every state passed).
 */
export async function runCrashStates(o: CrashRunOptions): globalThis.Promise<CrashRunResult> {
  const t0 = Date.now();
  const work = o.work ?? fs.mkdtempSync(path.join(os.tmpdir(), "pershome-crash-"));
  try {
    const { rec, P } = quietly(() => recordWorkload(work));
    const events = rec.events;
    const model = new CrashModel(rec.baseline, events);
    const rand = rng(o.seed);
    // spread the random states over the cuts; every cut also gets "nothing pending kept"
    const cuts = events.length + 1;
    const extra = Math.max(0, o.states - cuts);
    const perCut = new Array<number>(cuts).fill(0);
    for (let i = 0; i < extra; i++) perCut[Math.floor(rand() * cuts)]!++;
    const res: CrashRunResult = {
      events: events.length,
      cuts,
      states: 0,
      statesWithFindings: 0,
      findings: new Map(),
      repaired: 0,
      keptOnlyAfterRepair: 0,
      violations: [],
      seconds: 0,
    };
    const max = o.maxViolations ?? 50;
    let n = 0;
    for (let cut = 0; cut < cuts; cut++) {
      if (cut > 0) model.advance();
      const promised = P.at(cut);
      const modes: ("none" | "all" | "random")[] = ["none"];
      if (cut === cuts - 1) modes.push("all");
      for (let i = 0; i < perCut[cut]!; i++) modes.push("random");
      if (model.pendingCount === 0) modes.splice(1); // only one state exists at this cut
      for (const mode of modes) {
        const state = model.state(rand, mode);
        const dir = path.join(work, `s${n++}`, "pershome");
        materialise(state, dir);
        const r = quietly(() => checkState(dir, promised));
        res.states++;
        if (r.findings.length > 0) res.statesWithFindings++;
        if (r.repaired) res.repaired++;
        if (r.keptOnlyAfterRepair) res.keptOnlyAfterRepair++;
        for (const f of r.findings) res.findings.set(f, (res.findings.get(f) ?? 0) + 1);
        for (const p of r.problems)
          if (res.violations.length < max)
            res.violations.push({ cut, event: describeEvent(events[cut - 1]), state: state.label, ...p });
        fs.rmSync(path.dirname(dir), { recursive: true, force: true });
        o.onProgress?.(res.states, o.states);
        if (res.states % 10 === 0) await new globalThis.Promise((r) => setImmediate(r));
      }
    }
    res.seconds = (Date.now() - t0) / 1000;
    return res;
  } finally {
    if (!o.work) fs.rmSync(work, { recursive: true, force: true });
  }
}
