/**
 * `pershome check --repair`: carries out the fixes check.ts proposes. Logs are only ever
 * written through DirMeta (src/fs/dir-meta.ts), so every rewrite is the documented crash-safe
 * one: append, or a new snapshot in the other slot (A/B) before the old one goes. User data is
 * never deleted: data that cannot be put back where it came from is moved to
 * /pershome/lost+found and listed in lost+found/LISTING.txt.
 */
import fs from "node:fs";
import { fingerprint, recordApplies } from "../format/describe.js";
import { AREA_DIR, MARKER_FILE, makeMarker } from "../format/marker.js";
import type { MetaRecord } from "../format/records.js";
import { DirMeta, META_SLOTS } from "../fs/dir-meta.js";
import { NodeLower, factsOf } from "../fs/lower.js";
import { bp, bs, errCode, txt, userPath } from "./common.js";
import { HOME_RECORD, LINKS_DIR, LOST_FOUND } from "./check.js";
import type { DirScan, Finding, Report } from "./check.js";

export interface RepairResult {
  fixed: { finding: Finding; done: string }[];
  failed: { finding: Finding; why: string }[];
  /** what went to lost+found, as listed there */
  lostFound: string[];
}

interface Plan {
  set: Map<string, MetaRecord>;
  del: Set<string>;
  compact: boolean;
  /** slots to move away to lost+found (not files, too big) */
  moveSlots: Set<0 | 1>;
  /** damaged slots to keep a copy of in lost+found */
  copySlots: Set<0 | 1>;
}

const join = (a: string, b: string): string => (a === "" ? b : `${a}/${b}`);

function stat(p: string): ReturnType<typeof factsOf> | null {
  try {
    return factsOf(fs.lstatSync(bp(p), { bigint: true }));
  } catch {
    return null;
  }
}

/** Runs `fn` with the layer's own log lines (warnings about what check already reported) hidden. */
function quietly<T>(fn: () => T): T {
  const write = process.stderr.write.bind(process.stderr);
  const re = new RegExp(`^pershome\\[${process.pid}\\] (warn|info|debug): `);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
    if (re.test(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString())) return true;
    return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  try {
    return fn();
  } finally {
    process.stderr.write = write;
  }
}

function fsyncPath(p: string, dir = false): void {
  try {
    const fd = fs.openSync(
      bp(p),
      dir ? fs.constants.O_RDONLY | fs.constants.O_DIRECTORY : fs.constants.O_RDONLY,
    );
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    /* best effort: some drivers refuse fsync on directories */
  }
}

class LostFound {
  private dir: string | null = null;
  readonly listed: string[] = [];
  constructor(
    private readonly home: string,
    private readonly stamp: string,
  ) {}

  private ensure(): string {
    if (this.dir) return this.dir;
    let name = LOST_FOUND;
    for (let n = 1; ; n++) {
      const p = `${this.home}/${name}`;
      const f = stat(p);
      if (f?.isDir) break;
      if (!f) {
        fs.mkdirSync(bp(p), 0o755);
        fsyncPath(this.home, true);
        break;
      }
      name = `${LOST_FOUND}.${n}`;
    }
    this.dir = `${this.home}/${name}`;
    return this.dir;
  }

  /** A name not taken in lost+found (the stick may compare names without case). */
  private free(want: string): string {
    const dir = this.ensure();
    const dot = want.lastIndexOf(".");
    const [stem, ext] = dot > 0 ? [want.slice(0, dot), want.slice(dot)] : [want, ""];
    for (let n = 1; ; n++) {
      const name = n === 1 ? want : `${stem}.${n}${ext}`;
      if (!stat(`${dir}/${name}`)) return name;
    }
  }

  /** Moves a stored entry into lost+found; returns its new stored name there. */
  move(from: string, want: string, why: string): string {
    const name = this.free(want);
    fs.renameSync(bp(from), bp(`${this.dir!}/${name}`));
    this.list(name, why);
    return name;
  }

  copy(from: string, want: string, why: string): string {
    const name = this.free(want);
    fs.copyFileSync(bp(from), bp(`${this.dir!}/${name}`), fs.constants.COPYFILE_EXCL);
    fsyncPath(`${this.dir!}/${name}`);
    this.list(name, why);
    return name;
  }

  get storedDir(): string {
    return this.ensure();
  }

  private list(name: string, why: string): void {
    const line = `${this.stamp}  ${txt(name)}: ${why}`;
    this.listed.push(line);
  }

  /** Appends what was put here to LISTING.txt (a plain file, readable anywhere). */
  writeListing(): void {
    if (this.listed.length === 0 || !this.dir) return;
    const p = `${this.dir}/LISTING.txt`;
    const head = stat(p)
      ? ""
      : "What pershome check --repair put in this folder, and where it came from.\r\nNothing here is needed by pershome: keep, move or delete these files as you like.\r\n\r\n";
    fs.appendFileSync(bp(p), head + this.listed.map((l) => l + "\r\n").join(""));
    fsyncPath(p);
  }
}

function damagedCopyName(d: DirScan, slot: 0 | 1): string {
  const where =
    d.rel === ""
      ? "home"
      : txt(d.rel)
          .replace(/^\.pershome/, "pershome-area")
          .replace(/[/\\:*?"<>|]/g, "_");
  return bs(`damaged-metadata-${where}-${slot === 0 ? "a" : "b"}.txt`);
}

export function repairHome(report: Report, now = new Date()): RepairResult {
  return quietly(() => repair(report, now));
}

function repair(report: Report, now: Date): RepairResult {
  const home = bs(report.home);
  const lower = new NodeLower(home);
  const lf = new LostFound(home, now.toISOString().replace(/\.\d+Z$/, "Z"));
  const res: RepairResult = { fixed: [], failed: [], lostFound: [] };
  const plans = new Map<string, Plan>();
  const planOf = (rel: string): Plan => {
    let p = plans.get(rel);
    if (!p) {
      p = { set: new Map(), del: new Set(), compact: false, moveSlots: new Set(), copySlots: new Set() };
      plans.set(rel, p);
    }
    return p;
  };
  const dirOf = (rel: string): DirScan | undefined => report.dirs.get(rel);
  const absOf = (rel: string): string => (rel === "" ? home : `${home}/${rel}`);
  /** the record as the plan has it so far */
  const current = (rel: string, name: string): MetaRecord | undefined => {
    const p = planOf(rel);
    return p.del.has(name) ? undefined : (p.set.get(name) ?? dirOf(rel)?.records.get(name));
  };
  const setRec = (rel: string, rec: MetaRecord): void => {
    const p = planOf(rel);
    p.del.delete(rec.name);
    p.set.set(rec.name, rec);
  };
  const delRec = (rel: string, name: string): void => {
    const p = planOf(rel);
    p.set.delete(name);
    p.del.add(name);
  };
  const ok = (finding: Finding, done: string): void => {
    res.fixed.push({ finding, done });
  };
  /** a folder's log, written only the documented way */
  const metaOf = (rel: string): DirMeta => {
    const abs = absOf(rel);
    const isArea = rel === AREA_DIR;
    return new DirMeta(
      lower,
      () => abs,
      () => (name) => (isArea && name === HOME_RECORD) || stat(`${abs}/${name}`) !== null,
      () => {},
    );
  };

  // Damaged logs: start from what can still be read, then let the other fixes change it.
  for (const d of report.dirs.values()) {
    if (!d.salvaged) continue;
    for (const [name, rec] of d.records) {
      const facts = d.entries.get(name);
      if ((d.role === "area" && name === HOME_RECORD) || (facts && recordApplies(rec, facts)))
        setRec(d.rel, rec);
    }
  }

  // 1. the marker and the area
  const area = `${home}/${AREA_DIR}`;
  const writeMarker = (): void => {
    lower.unlinkIfExists(`${area}/${MARKER_FILE}`);
    lower.writeNew(`${area}/${MARKER_FILE}`, Buffer.from(makeMarker(now)), true);
    fsyncPath(area, true);
  };
  for (const f of report.findings) {
    try {
      switch (f.kind) {
        case "area-not-dir":
          lf.move(
            area,
            bs("pershome-area-file"),
            "a file that stood where pershome's own folder (.pershome) belongs",
          );
          fs.mkdirSync(bp(area), 0o755);
          writeMarker();
          ok(f, `moved the file to /${LOST_FOUND} and wrote a new marker`);
          break;
        case "area-missing":
          fs.mkdirSync(bp(area), 0o755);
          writeMarker();
          ok(f, "wrote the format marker");
          break;
        case "marker-missing":
        case "marker-garbage":
          writeMarker();
          ok(f, "wrote a correct format marker");
          break;
        default:
          break;
      }
    } catch (err) {
      res.failed.push({ finding: f, why: errCode(err) ?? String(err) });
    }
  }

  // 2. moves of data (before any log is written, so the logs see where things now are)
  const linksRel = `${AREA_DIR}/${LINKS_DIR}`;
  for (const f of report.findings) {
    if (f.kind !== "link-orphan" || !f.linkId) continue;
    const links = dirOf(linksRel)!;
    const dataPath = `${absOf(linksRel)}/${f.linkId}`;
    try {
      if (f.to) {
        const [rel, name] = f.to.split("\0") as [string, string];
        const target = `${absOf(rel)}/${name}`;
        const there = stat(target);
        // an empty file or a placeholder, whole or cut off (check.ts made sure), holds
        // nothing to lose
        const d = dirOf(rel);
        if (!there || (there.isFile && (d?.unfinished.has(name) || d?.placeholders.has(name)))) {
          if (there) lower.unlink(target);
          lower.rename(dataPath, target);
          lower.fsyncDir(absOf(rel));
          delRec(linksRel, f.linkId);
          ok(f, `put it back as ${userPath(join(rel, name))}`);
          continue;
        }
      }
      const rec = links.records.get(f.linkId);
      const facts = links.entries.get(f.linkId)!;
      const keep = rec && recordApplies(rec, facts) ? rec : undefined;
      const name = lf.move(
        dataPath,
        bs(`hard-linked-file-${f.linkId}`),
        `the data of a hard-linked file none of whose names were left (from .pershome/links/${f.linkId})`,
      );
      lower.fsyncDir(lf.storedDir);
      const moved = stat(`${lf.storedDir}/${name}`);
      if (keep && moved) {
        // it keeps its permissions, times and xattrs
        setRec(lf.storedDir.slice(home.length + 1), {
          name,
          kind: "f",
          ...(keep.mode !== undefined ? { mode: keep.mode } : {}),
          ...(keep.mtime ? { mtime: keep.mtime } : {}),
          ...(keep.atime ? { atime: keep.atime } : {}),
          ...(keep.ctime ? { ctime: keep.ctime } : {}),
          ...(keep.xattrs ? { xattrs: keep.xattrs } : {}),
          fp: fingerprint(moved),
        });
      }
      delRec(linksRel, f.linkId);
      ok(f, `moved it to /${LOST_FOUND}/${txt(name)}`);
    } catch (err) {
      res.failed.push({ finding: f, why: errCode(err) ?? String(err) });
    }
  }

  // 3. what each log should say
  /** symlinks whose stored copy of the target is to be written again (step 5) */
  const copies: Finding[] = [];
  for (const f of report.findings) {
    const rel = f.dir;
    if (rel === undefined) continue;
    const d = dirOf(rel);
    if (!d) continue;
    const name = f.name ?? "";
    const facts = d.entries.get(name);
    switch (f.kind) {
      case "log-not-file":
      case "log-too-big":
        planOf(rel).moveSlots.add(f.slot!);
        planOf(rel).compact = true;
        break;
      case "log-damaged":
        planOf(rel).copySlots.add(f.slot!);
        planOf(rel).compact = true;
        break;
      case "log-leftover":
      case "log-bad-lines":
        planOf(rel).compact = true;
        break;
      case "record-vanished":
      case "record-stale":
      case "link-data-missing":
        delRec(rel, name);
        ok(
          f,
          f.kind === "link-data-missing"
            ? "forgot the link (the small note stays as an ordinary file)"
            : "forgot the old record",
        );
        break;
      case "record-refresh":
      case "record-open": {
        const cur = current(rel, name);
        if (!cur) break;
        const rec: MetaRecord = { ...cur };
        delete rec.writing;
        if (rel === linksRel || (d.role !== "area" && cur.kind !== "d")) {
          const fnow = rel === linksRel ? d.entries.get(name) : facts;
          if (fnow?.isFile) rec.fp = fingerprint(fnow);
        }
        setRec(rel, rec);
        ok(
          f,
          f.kind === "record-open"
            ? "marked it finished (its permissions are kept)"
            : "brought its record up to date",
        );
        break;
      }
      case "record-renamed": {
        const cur = current(rel, name);
        const to = f.to!;
        const tf = d.entries.get(to);
        if (!cur || !tf) break;
        setRec(rel, { ...cur, name: to, fp: fingerprint(tf) });
        delRec(rel, name);
        ok(f, `gave ${userPath(join(rel, to))} its record back`);
        break;
      }
      case "placeholder-no-record":
        if (facts && f.linkId) {
          setRec(rel, { name, kind: "h", linkId: f.linkId, fp: fingerprint(facts) });
          ok(f, "linked it to its data again");
        }
        break;
      case "link-copy-missing":
        copies.push(f);
        break;
      case "link-count": {
        const links = dirOf(linksRel)!;
        const data = links.entries.get(name)!;
        const cur = current(linksRel, name);
        const base: MetaRecord = cur && recordApplies(cur, data) ? { ...cur } : { name, kind: "f" };
        const count = f.count ?? 1;
        delete base.writing;
        setRec(linksRel, { ...base, nlink: count, fp: fingerprint(data) });
        ok(f, `set its link count to ${count}`);
        break;
      }
      default:
        break;
    }
  }
  // The record goes to the stick marked "being written" before the copy changes, so that a
  // pull in between still shows the link whatever the copy's size and time then are.
  for (const f of copies) {
    const cur = current(f.dir!, f.name!);
    if (cur?.kind === "l") setRec(f.dir!, { ...cur, writing: true });
  }

  // 4. write the logs, directory by directory, through DirMeta
  for (const [rel, plan] of plans) {
    const d = dirOf(rel);
    const abs = absOf(rel);
    const isArea = rel === AREA_DIR;
    const slotFindings = report.findings.filter(
      (f) => f.dir === rel && (f.kind.startsWith("log-") || f.kind === "log-damaged"),
    );
    try {
      for (const slot of plan.moveSlots) {
        lf.move(
          `${abs}/${META_SLOTS[slot]}`,
          bs(`moved-${txt(damagedCopyName(d!, slot))}`),
          `something stored under pershome's metadata name in ${userPath(rel)}`,
        );
      }
      for (const slot of plan.copySlots) {
        if (stat(`${abs}/${META_SLOTS[slot]}`)) {
          lf.copy(
            `${abs}/${META_SLOTS[slot]}`,
            damagedCopyName(d!, slot),
            `a copy of the damaged metadata of ${isArea ? "the home folder" : userPath(rel)} (pershome could not read it)`,
          );
        }
      }
      const meta = metaOf(rel);
      for (const name of plan.del) meta.forget(name);
      for (const rec of plan.set.values()) meta.set(rec);
      if (plan.compact && plan.set.size === 0) {
        // a rewrite with nothing new: hand DirMeta one record it already has (it then writes
        // a fresh snapshot, since it knows its slots need tidying)
        const keep = [...(d?.records.keys() ?? [])].find((n) => !plan.del.has(n) && meta.get(n));
        if (keep) meta.set(meta.get(keep)!);
      }
      meta.flush(true);
      // Nothing left to write but junk: a log with no record in it is only clutter.
      const live = [...(d?.records.keys() ?? [])].some((n) => !plan.del.has(n)) || plan.set.size > 0;
      if (!live) {
        for (const s of d?.slots ?? []) {
          if (
            s.state === "incomplete" ||
            (s.state === "complete" && s.records.size === 0) ||
            (s.state === "complete" && d!.active !== s.slot)
          ) {
            lower.unlinkIfExists(s.path);
          }
        }
      }
      for (const f of slotFindings)
        ok(
          f,
          f.kind === "log-damaged"
            ? "wrote its metadata again from what could be read"
            : f.kind === "log-leftover"
              ? "removed the leftover"
              : f.kind === "log-bad-lines"
                ? "wrote its metadata again without the damaged lines"
                : `moved it to /${LOST_FOUND}`,
        );
    } catch (err) {
      for (const f of slotFindings) res.failed.push({ finding: f, why: errCode(err) ?? String(err) });
      const why = errCode(err) ?? String(err);
      // the record fixes of this folder did not reach the stick either
      for (const x of res.fixed.filter((r) => r.finding.dir === rel))
        res.failed.push({ finding: x.finding, why });
      res.fixed = res.fixed.filter((r) => r.finding.dir !== rel);
    }
  }
  // 5. symlinks' stored copies of their targets, each durable before its record's fingerprint
  rewriteLinkCopies(copies, res, lower, absOf, metaOf);

  try {
    lf.writeListing();
  } catch {
    /* the items are there; only the listing is missing */
  }
  lower.settleRemoved(); // vfat: what the repair removed, durable before its space is reused
  res.lostFound = lf.listed;
  return res;
}

/**
 * Writes each symlink's target into its stored file again (what a pull left empty or zeros:
 * docs/format.md, rule 3), fsyncs it, then gives its record, written ahead with "w":1 in step
 * 4, the new fingerprint, durably.
 */
function rewriteLinkCopies(
  copies: Finding[],
  res: RepairResult,
  lower: NodeLower,
  absOf: (rel: string) => string,
  metaOf: (rel: string) => DirMeta,
): void {
  const failedHere = (f: Finding): boolean => res.failed.some((x) => x.finding.dir === f.dir);
  const byDir = new Map<string, Finding[]>();
  for (const f of copies) if (!failedHere(f)) byDir.set(f.dir!, [...(byDir.get(f.dir!) ?? []), f]);
  for (const [rel, list] of byDir) {
    const meta = metaOf(rel);
    const done: Finding[] = [];
    for (const f of list) {
      try {
        const rec = meta.get(f.name!);
        if (rec?.kind !== "l" || rec.target === undefined) continue;
        if (!rec.writing) {
          res.failed.push({ finding: f, why: "its record could not be marked first" });
          continue;
        }
        const path = `${absOf(rel)}/${f.name!}`;
        const copy = Buffer.from(rec.target, "latin1");
        const fd = lower.open(path, fs.constants.O_WRONLY);
        try {
          lower.write(fd, copy, 0);
          if (lower.fstat(fd).size > copy.length) lower.ftruncate(fd, copy.length);
          lower.fsync(fd);
        } finally {
          lower.close(fd);
        }
        const facts = lower.stat(path);
        if (!facts) continue;
        const next: MetaRecord = { ...rec, fp: fingerprint(facts) };
        delete next.writing;
        meta.set(next);
        done.push(f);
      } catch (err) {
        res.failed.push({ finding: f, why: errCode(err) ?? String(err) });
      }
    }
    try {
      meta.flush(true);
      for (const f of done) res.fixed.push({ finding: f, done: "wrote the copy of its target again" });
    } catch (err) {
      for (const f of done) res.failed.push({ finding: f, why: errCode(err) ?? String(err) });
    }
  }
}
