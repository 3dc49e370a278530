/**
 * `pershome check`: reads a stick's /pershome without changing anything and compares every
 * directory's metadata log with the files there (docs/format.md): damaged or incomplete logs,
 * leftovers of an interrupted save, records that no longer apply or whose file is gone,
 * placeholders and data of hard links that do not match up, link counts, the format marker.
 * Each finding says in plain words what it means and what --repair does about it; repair.ts
 * carries the fixes out.
 */
import fs from "node:fs";
import { fingerprint, olderRecordMatches, recordApplies, sameStoredTime } from "../format/describe.js";
import type { StoredFacts } from "../format/describe.js";
import { AREA_DIR } from "../format/marker.js";
import { isReservedStored } from "../format/names.js";
import { MAX_LOG_BYTES, parseLog, snapshotText } from "../format/records.js";
import type { MetaRecord } from "../format/records.js";
import { META_SLOTS } from "../fs/dir-meta.js";
import { factsOf } from "../fs/lower.js";
import { bp, errCode, userPath } from "./common.js";
import { readMarker } from "./marker-state.js";
import type { MarkerState } from "./marker-state.js";

export const LINKS_DIR = "links";
export const LOST_FOUND = "lost+found";
export const HOME_RECORD = "home";
const LINK_ID = /^[0-9a-f]{16,32}$/;
/** the longest symlink target the layer makes (PATH_MAX - 1) */
export const MAX_LINK_COPY = 4095;

/** The placeholder the layer writes under each name of a hard-linked file (src/fs/ops/entries.ts). */
const PLACEHOLDER =
  /^pershome: this file has several names \(hard links\); its data is in \.pershome\/links\/([0-9a-f]{16,32})\r\n$/;
const PLACEHOLDER_TEXT =
  "pershome: this file has several names (hard links); its data is in .pershome/links/";
const PLACEHOLDER_BASE = Buffer.byteLength(PLACEHOLDER_TEXT + "\r\n");

export type SlotState = "absent" | "not-file" | "too-big" | "unreadable" | "incomplete" | "complete";

export interface SlotInfo {
  slot: 0 | 1;
  path: string;
  state: SlotState;
  size: number;
  mtimeMs: number;
  gen: number;
  badLines: number;
  records: Map<string, MetaRecord>;
  /** earlier records of names (ParsedLog.older) */
  older: Map<string, MetaRecord[]>;
}

export type Role = "home" | "dir" | "area" | "links";

export interface DirScan {
  /** stored absolute path (byte string) */
  abs: string;
  /** stored path relative to the home (byte string); "" for the home */
  rel: string;
  role: Role;
  /** stored name -> what lstat says (names reserved for the layer left out) */
  entries: Map<string, StoredFacts>;
  slots: SlotInfo[];
  /** the slot the layer reads (the complete one with the highest generation) */
  active: 0 | 1 | null;
  /** the records the layer uses, or (no complete log) those still readable in a damaged one */
  records: Map<string, MetaRecord>;
  /** the records came from a damaged log, by salvage */
  salvaged: boolean;
  /** stored name -> link id, for files whose content is a hard-link placeholder */
  placeholders: Map<string, string>;
  /** files that may be a placeholder a pull cut off (see placeholderKind): nothing to lose */
  unfinished: Set<string>;
  /** earlier records of names, as the log holds them (ParsedLog.older) */
  older: Map<string, MetaRecord[]>;
}

export type FindingKind =
  | "marker-missing"
  | "marker-garbage"
  | "area-missing"
  | "area-not-dir"
  | "unreadable-dir"
  | "log-not-file"
  | "log-too-big"
  | "log-damaged"
  | "log-bad-lines"
  | "log-leftover"
  | "record-vanished"
  | "record-renamed"
  | "record-stale"
  | "record-refresh"
  | "record-open"
  | "link-copy-missing"
  | "link-copy-other"
  | "placeholder-no-record"
  | "placeholder-orphan"
  | "link-data-missing"
  | "link-orphan"
  | "link-count";

export interface Finding {
  kind: FindingKind;
  /** "problem": repair fixes it (and check exits 2 until it is fixed); "note": nothing to fix */
  severity: "problem" | "note";
  /** the user's path it is about */
  path: string;
  message: string;
  /** what --repair does about it */
  fix: string;
  /** the directory (rel) and stored name it is about, for repair */
  dir?: string;
  name?: string;
  slot?: 0 | 1;
  linkId?: string;
  /** record-renamed: the new stored name; link-orphan: where it goes back ("dir\0name"), if anywhere */
  to?: string;
  /** link-count: the number of names found */
  count?: number;
}

export interface Report {
  home: string;
  marker: MarkerState;
  dirs: Map<string, DirScan>;
  findings: Finding[];
  counts: { dirs: number; files: number; records: number };
}

const join = (a: string, b: string): string => (a === "" ? b : `${a}/${b}`);

function lstatFacts(p: string): StoredFacts | null {
  try {
    return factsOf(fs.lstatSync(bp(p), { bigint: true }));
  } catch {
    return null;
  }
}

function readSmall(p: string, max: number): Buffer | null {
  const fd = fs.openSync(bp(p), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.size > max) return null;
    const buf = Buffer.alloc(st.size);
    let got = 0;
    while (got < st.size) {
      const n = fs.readSync(fd, buf, got, st.size - got, got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * What a stored file is, if it is (or was about to become) a hard-link placeholder: the link id
 * it names, "unfinished" for a placeholder whose content a pull cut off (empty, or of its size
 * but zeros after a prefix of the text: what a torn first write leaves), or null.
 */
function placeholderKind(p: string, facts: StoredFacts): string | null {
  if (!facts.isFile) return null;
  if (facts.size === 0) return "unfinished";
  if (facts.size < PLACEHOLDER_BASE + 16 || facts.size > PLACEHOLDER_BASE + 32) return null;
  try {
    const b = readSmall(p, 256);
    if (!b) return null;
    const id = PLACEHOLDER.exec(b.toString("latin1"))?.[1];
    if (id) return id;
    const text = b.subarray(0, b.indexOf(0) < 0 ? b.length : b.indexOf(0)).toString("latin1");
    const zeros = b.subarray(text.length).every((x) => x === 0);
    const prefix =
      PLACEHOLDER_TEXT.startsWith(text) ||
      (text.startsWith(PLACEHOLDER_TEXT) && /^[0-9a-f]*\r?$/.test(text.slice(PLACEHOLDER_TEXT.length)));
    return zeros && prefix ? "unfinished" : null;
  } catch {
    return null;
  }
}
/** The link id a stored file names, if its content is exactly a placeholder. */
export function placeholderId(p: string, facts: StoredFacts): string | null {
  const kind = placeholderKind(p, facts);
  return kind === "unfinished" ? null : kind;
}

const SALVAGE_HEADER = snapshotText(0, []).split("\n")[0] + "\n";

function readSlot(dirAbs: string, slot: 0 | 1): SlotInfo {
  const path = `${dirAbs}/${META_SLOTS[slot]}`;
  const info: SlotInfo = {
    slot,
    path,
    state: "absent",
    size: 0,
    mtimeMs: 0,
    gen: -1,
    badLines: 0,
    records: new Map(),
    older: new Map(),
  };
  let st: fs.Stats;
  try {
    st = fs.lstatSync(bp(path));
  } catch {
    return info;
  }
  info.size = st.size;
  info.mtimeMs = st.mtimeMs;
  if (!st.isFile()) return { ...info, state: "not-file" };
  if (st.size > MAX_LOG_BYTES) return { ...info, state: "too-big" };
  let text: Buffer | null;
  try {
    text = readSmall(path, MAX_LOG_BYTES);
  } catch {
    return { ...info, state: "unreadable" };
  }
  if (!text) return { ...info, state: "unreadable" };
  const log = parseLog(text);
  if (log.complete)
    return {
      ...info,
      state: "complete",
      gen: log.gen,
      badLines: log.badLines,
      records: log.records,
      older: log.older,
    };
  // Damaged: every line carries its own CRC, so the records still readable can be trusted as
  // much as any; read them as if the header were intact.
  const salvage = parseLog(Buffer.concat([Buffer.from(SALVAGE_HEADER), text]));
  return {
    ...info,
    state: "incomplete",
    gen: log.gen,
    badLines: log.badLines,
    records: salvage.records,
    older: salvage.older,
  };
}

function scanDir(home: string, rel: string, role: Role): DirScan {
  const abs = rel === "" ? home : `${home}/${rel}`;
  const d: DirScan = {
    abs,
    rel,
    role,
    entries: new Map(),
    slots: [readSlot(abs, 0), readSlot(abs, 1)],
    active: null,
    records: new Map(),
    salvaged: false,
    placeholders: new Map(),
    unfinished: new Set(),
    older: new Map(),
  };
  for (const n of (fs.readdirSync(bp(abs), { encoding: "buffer" }) as Buffer[]).map((b) =>
    b.toString("latin1"),
  )) {
    if (isReservedStored(n)) continue;
    const f = lstatFacts(`${abs}/${n}`);
    if (!f) continue;
    d.entries.set(n, f);
    const id = placeholderKind(`${abs}/${n}`, f);
    if (id === "unfinished") d.unfinished.add(n);
    else if (id) d.placeholders.set(n, id);
  }
  let best: SlotInfo | null = null;
  for (const s of d.slots) if (s.state === "complete" && (best === null || s.gen > best.gen)) best = s;
  const older = d.older;
  if (best) {
    d.active = best.slot;
    d.records = new Map(best.records);
    for (const [k, v] of best.older) older.set(k, v);
  } else {
    const damaged = d.slots.filter((s) => s.state === "incomplete");
    if (damaged.length > 0) {
      d.salvaged = true;
      for (const s of damaged) for (const [k, v] of s.records) d.records.set(k, v);
      for (const s of damaged) for (const [k, v] of s.older) older.set(k, [...(older.get(k) ?? []), ...v]);
    }
  }
  // The layer's own rule (docs/format.md, rule 6; DirMeta.fallback): when a name's latest
  // record does not apply, an earlier one that matches the file exactly is its record. So
  // check sees the record the layer uses (and a repair's rewrite of the log would keep).
  for (const [name, list] of older) {
    const facts = d.entries.get(name);
    const cur = d.records.get(name);
    if (!facts || (cur && recordApplies(cur, facts))) continue;
    const match = [...list].reverse().find((r) => olderRecordMatches(r, facts));
    if (match) d.records.set(name, match);
  }
  return d;
}

function describeKind(k: MetaRecord["kind"]): string {
  return { f: "file", d: "folder", l: "symbolic link", p: "fifo", s: "socket", h: "hard link" }[k];
}

/** Is a record whose fingerprint no longer matches still plainly right about the file? */
function stillMatches(d: DirScan, name: string, rec: MetaRecord, facts: StoredFacts): boolean {
  if (!facts.isFile) return false;
  if (rec.kind === "h") return d.placeholders.get(name) === rec.linkId;
  if (rec.kind === "p" || rec.kind === "s") return facts.size === 0;
  if (rec.kind === "l" && rec.target !== undefined && facts.size === rec.target.length) {
    try {
      return readSmall(`${d.abs}/${name}`, 4096)?.toString("latin1") === rec.target;
    } catch {
      return false;
    }
  }
  return false;
}

/**
 * Does a symlink's stored file hold its target, as the layer writes it? The layer reads the
 * target from the record; the copy is for other systems, and is written without an fsync, so
 * a pull can leave it empty, or of its size with zeros after a part of the target
 * (docs/format.md, rule 3): "missing". Any other content is "other": a pull on FAT can also
 * leave an entry pointing at a cluster that was free and may since hold another file's data,
 * so --repair never writes into such a copy (the stick's own fsck/chkdsk first).
 */
function linkCopy(d: DirScan, name: string, rec: MetaRecord, facts: StoredFacts): "ok" | "missing" | "other" {
  const target = rec.target;
  if (target === undefined || target.length > MAX_LINK_COPY) return "ok"; // nothing to compare
  if (facts.size === 0) return target.length === 0 ? "ok" : "missing";
  if (facts.size !== target.length) return "other";
  let copy: string | undefined;
  try {
    copy = readSmall(`${d.abs}/${name}`, MAX_LINK_COPY)?.toString("latin1");
  } catch {
    return "ok"; // unreadable: not something a rewrite would help
  }
  if (copy === undefined || copy === target) return "ok";
  const zeros = copy.search(/\0*$/);
  return target.startsWith(copy.slice(0, zeros)) ? "missing" : "other";
}

function sameFp(fp: readonly [number, number] | undefined, facts: StoredFacts): boolean {
  if (!fp || !facts.isFile) return false;
  const [size, ms] = fingerprint(facts);
  // the layer's own rule: FAT's 2 s steps and a time-zone shift still count as "not changed"
  return fp[0] === size && sameStoredTime(fp[1], ms);
}

/** Reads the whole stick home and lists what does not match. Changes nothing. */
export function checkHome(home: string): Report {
  const marker = readMarker(home);
  const report: Report = {
    home,
    marker,
    dirs: new Map(),
    findings: [],
    counts: { dirs: 0, files: 0, records: 0 },
  };
  const add = (f: Finding): void => {
    report.findings.push(f);
  };
  if (marker.state === "no-home" || marker.state === "home-not-dir" || marker.state === "newer")
    return report;

  // --- the marker and the .pershome area
  if (marker.state === "no-area") {
    add({
      kind: "area-missing",
      severity: "note",
      path: "/",
      message:
        "the pershome folder has no format marker yet (it was made by hand, or never mounted): pershome writes it at the first mount",
      fix: "writes the marker now",
    });
  } else if (marker.state === "area-not-dir") {
    add({
      kind: "area-not-dir",
      severity: "problem",
      path: "/.pershome",
      message: "pershome's own folder (.pershome) is a file here, so the stick cannot be mounted",
      fix: `moves that file to /${LOST_FOUND} and makes the folder and its marker again`,
    });
  } else if (marker.state === "missing") {
    add({
      kind: "marker-missing",
      severity: "note",
      path: "/.pershome/format",
      message: "the format marker is missing: pershome writes it again at the next mount",
      fix: "writes it now",
    });
  } else if (marker.state === "garbage") {
    add({
      kind: "marker-garbage",
      severity: "problem",
      path: "/.pershome/format",
      message: `the format marker is damaged (it says ${JSON.stringify(marker.text)}); the stick is treated as format 1`,
      fix: "writes a correct marker",
    });
  }

  // --- every directory of the home, then the area and the links
  const walk = (rel: string, role: Role): void => {
    let d: DirScan;
    try {
      d = scanDir(home, rel, role);
    } catch (err) {
      add({
        kind: "unreadable-dir",
        severity: "problem",
        path: userPath(rel),
        message: `this folder cannot be read (${errCode(err) ?? String(err)}): the stick may be failing; copy what you can off it`,
        fix: "nothing (check the stick with the system's fsck)",
      });
      return;
    }
    report.dirs.set(rel, d);
    report.counts.dirs++;
    for (const [name, f] of d.entries) {
      if (f.isDir) {
        if (role === "home" || role === "dir") walk(join(rel, name), "dir");
      } else if (role === "home" || role === "dir") report.counts.files++;
    }
  };
  walk("", "home");
  const areaRel = AREA_DIR;
  if (marker.state !== "no-area" && marker.state !== "area-not-dir") {
    try {
      report.dirs.set(areaRel, scanDir(home, areaRel, "area"));
    } catch {
      /* reported through the marker */
    }
    const linksRel = `${AREA_DIR}/${LINKS_DIR}`;
    if (lstatFacts(`${home}/${linksRel}`)?.isDir) report.dirs.set(linksRel, scanDir(home, linksRel, "links"));
  }

  // --- the logs themselves
  for (const d of report.dirs.values()) {
    const where =
      d.role === "area"
        ? "/.pershome (the home folder's own permissions)"
        : d.role === "links"
          ? "/.pershome/links (hard-linked files)"
          : userPath(d.rel);
    for (const s of d.slots) {
      const common = { dir: d.rel, slot: s.slot, path: where };
      if (s.state === "not-file") {
        add({
          ...common,
          kind: "log-not-file",
          severity: "problem",
          message: `${META_SLOTS[s.slot]} is not a file (something else is stored under pershome's name)`,
          fix: `moves it to /${LOST_FOUND}`,
        });
      } else if (s.state === "too-big" || s.state === "unreadable") {
        add({
          ...common,
          kind: "log-too-big",
          severity: "problem",
          message: `its metadata file ${META_SLOTS[s.slot]} ${s.state === "too-big" ? "is far too large" : "cannot be read"}, so its files show with default permissions`,
          fix: `moves it to /${LOST_FOUND}`,
        });
      } else if (s.state === "incomplete" && s.size > 0) {
        if (d.active !== null) {
          add({
            ...common,
            kind: "log-leftover",
            severity: "problem",
            message: `a half-written copy of its metadata (${META_SLOTS[s.slot]}) is left over from an interrupted save; the complete one is used`,
            fix: "removes the leftover",
          });
        } else {
          add({
            ...common,
            kind: "log-damaged",
            severity: "problem",
            message:
              `its metadata (${META_SLOTS[s.slot]}) is damaged or incomplete, so pershome ignores it and its files show with default permissions` +
              (s.records.size > 0 ? `; ${s.records.size} record(s) in it can still be read` : ""),
            fix: `writes the metadata again from what can still be read (a copy of the damaged file goes to /${LOST_FOUND})`,
          });
        }
      } else if (s.state === "incomplete") {
        add({
          ...common,
          kind: "log-leftover",
          severity: "problem",
          message: `an empty metadata file (${META_SLOTS[s.slot]}) is left over`,
          fix: "removes it",
        });
      } else if (s.state === "complete" && d.active !== s.slot) {
        add({
          ...common,
          kind: "log-leftover",
          severity: "problem",
          message: `an older copy of its metadata (${META_SLOTS[s.slot]}) is left over from an interrupted save; the newer one is used`,
          fix: "removes the older copy",
        });
      } else if (s.state === "complete" && s.badLines > 0) {
        add({
          ...common,
          kind: "log-bad-lines",
          severity: "problem",
          message: `${s.badLines} damaged line(s) in its metadata (${META_SLOTS[s.slot]}) are ignored`,
          fix: "writes the metadata again without them",
        });
      }
    }
  }

  // --- records against files
  /** link id -> names (dir, stored name) that point at it */
  const refs = new Map<string, { dir: string; name: string }[]>();
  const ref = (id: string, dir: string, name: string): void => {
    const l = refs.get(id) ?? [];
    l.push({ dir, name });
    refs.set(id, l);
  };
  const vanished: { d: DirScan; name: string; rec: MetaRecord }[] = [];
  /** stale records on an empty file or a placeholder: where data moving to links came from */
  const emptied: { d: DirScan; name: string; rec: MetaRecord }[] = [];
  /** names whose record is (or will be) gone: candidates for a renamed record */
  const withoutRecord = new Map<string, Set<string>>();
  const noRec = (d: DirScan, name: string): void => {
    const s = withoutRecord.get(d.rel) ?? new Set<string>();
    s.add(name);
    withoutRecord.set(d.rel, s);
  };
  const linksRel = `${AREA_DIR}/${LINKS_DIR}`;
  for (const d of report.dirs.values()) {
    if (d.role === "area") {
      // only the home folder's own record lives here
      const rec = d.records.get(HOME_RECORD);
      if (rec?.writing) {
        add({
          kind: "record-open",
          severity: "problem",
          path: "/",
          dir: d.rel,
          name: HOME_RECORD,
          message: "the home folder's record was left open by an interrupted write",
          fix: "marks it finished",
        });
      }
      continue;
    }
    if (d.role === "links") continue; // below
    report.counts.records += d.records.size;
    for (const name of d.entries.keys()) if (!d.records.has(name)) noRec(d, name);
    for (const [name, rec] of d.records) {
      const facts = d.entries.get(name);
      const path = userPath(join(d.rel, name));
      if (!facts) {
        vanished.push({ d, name, rec });
        continue;
      }
      if (!recordApplies(rec, facts)) {
        if (stillMatches(d, name, rec, facts)) {
          add({
            kind: "record-refresh",
            severity: "problem",
            path,
            dir: d.rel,
            name,
            message: `this ${describeKind(rec.kind)} was touched outside pershome but is still what its record says; as it is, it shows as a plain file`,
            fix: "brings its record up to date",
          });
          if (rec.kind === "h" && rec.linkId) ref(rec.linkId, d.rel, name);
        } else {
          noRec(d, name);
          if (rec.kind === "f" && (d.unfinished.has(name) || d.placeholders.has(name)))
            emptied.push({ d, name, rec });
          add({
            kind: "record-stale",
            severity: "problem",
            path,
            dir: d.rel,
            name,
            message: `${(rec.kind === "d") !== facts.isDir ? `its record describes a ${describeKind(rec.kind)}, but a ${facts.isDir ? "folder" : "file"} is there` : "it was changed outside pershome (on Windows or macOS?)"}; its old ${rec.kind === "f" ? "permissions and times" : describeKind(rec.kind) + " record"} no longer apply, so it shows as an ordinary ${facts.isDir ? "folder" : "file"}`,
            fix: "forgets the old record (the file itself is kept as it is)",
          });
        }
        continue;
      }
      if (rec.writing) {
        add({
          kind: "record-open",
          severity: "problem",
          path,
          dir: d.rel,
          name,
          message:
            "it was being written when the stick was last pulled or the computer stopped: check that its contents are complete",
          fix: "keeps its permissions and marks it finished",
        });
      }
      const copy = rec.kind === "l" ? linkCopy(d, name, rec, facts) : "ok";
      if (copy === "missing") {
        add({
          kind: "link-copy-missing",
          severity: "note",
          path,
          dir: d.rel,
          name,
          message:
            "this symbolic link is fine, but the copy of its target kept for Windows and macOS did not reach the stick before it was pulled (there it shows as an empty file)",
          fix: "writes the copy again",
        });
      } else if (copy === "other") {
        add({
          kind: "link-copy-other",
          severity: "note",
          path,
          message:
            "this symbolic link is fine, but the copy of its target kept for Windows and macOS holds other bytes, which a pull can leave on a FAT stick whose own check (fsck.fat, chkdsk) has not run since; recreate the link to write the copy again",
          fix: "nothing",
        });
      }
      if (rec.kind === "h" && rec.linkId) ref(rec.linkId, d.rel, name);
    }
  }

  // --- placeholders that lost their record
  const links = report.dirs.get(linksRel);
  const hasData = (id: string): boolean => links?.entries.get(id)?.isFile === true;
  for (const [rel, names] of withoutRecord) {
    const d = report.dirs.get(rel)!;
    for (const name of names) {
      const id = d.placeholders.get(name);
      if (!id) continue;
      const path = userPath(join(rel, name));
      if (hasData(id)) {
        ref(id, rel, name);
        names.delete(name);
        add({
          kind: "placeholder-no-record",
          severity: "problem",
          path,
          dir: rel,
          name,
          linkId: id,
          message:
            "this is one name of a hard-linked file, but its record is lost, so it shows as a small note instead of the file",
          fix: "links it to its data again",
        });
      } else {
        add({
          kind: "placeholder-orphan",
          severity: "note",
          path,
          message: `this small note was left by a hard-linked file whose data (.pershome/links/${id}) is gone; it is an ordinary file now and can be deleted`,
          fix: "nothing",
        });
      }
    }
  }

  // --- hard links: names without data, data without names, counts
  for (const [id, names] of refs) {
    if (hasData(id)) continue;
    for (const n of names) {
      add({
        kind: "link-data-missing",
        severity: "problem",
        path: userPath(join(n.dir, n.name)),
        dir: n.dir,
        name: n.name,
        linkId: id,
        message: `this is a name of a hard-linked file whose data (.pershome/links/${id}) is missing (deleted outside pershome?); only a small note is left under the name`,
        fix: "forgets the link, so the note shows as the ordinary file it is",
      });
    }
  }
  const claimed = new Set<string>();
  if (links) {
    report.counts.records += links.records.size;
    for (const [id, rec] of links.records) {
      if (!links.entries.has(id)) {
        add({
          kind: "record-vanished",
          severity: "problem",
          path: `/.pershome/links/${id}`,
          dir: linksRel,
          name: id,
          message: "the record of hard-linked data that is no longer there",
          fix: "forgets the record",
        });
      } else if (rec.writing && recordApplies(rec, links.entries.get(id)!)) {
        add({
          kind: "record-open",
          severity: "problem",
          path: `/.pershome/links/${id}`,
          dir: linksRel,
          name: id,
          message:
            "hard-linked data that was being written when the stick was last pulled: check its contents",
          fix: "marks it finished",
        });
      }
    }
    for (const [id, facts] of links.entries) {
      if (!LINK_ID.test(id) || !facts.isFile) continue;
      const names = refs.get(id) ?? [];
      const rec = links.records.get(id);
      const recOk = rec !== undefined && recordApplies(rec, facts);
      if (names.length === 0) {
        // Data no name points to. A pull while a file was becoming a hard link leaves it here
        // while the file's old record (same size and time) still waits in its folder, and the
        // name is gone, or holds a placeholder the pull cut off (empty, zeros) or its own
        // placeholder: put it back there (docs/format.md, rule 5). The name's hard-link record
        // is written only once its placeholder is on the stick, so a name gone with its `h`
        // record left was deleted elsewhere: such data goes to lost+found.
        const matches = [...vanished, ...emptied].filter(
          (v) =>
            v.rec.kind === "f" &&
            !claimed.has(`${v.d.rel}\0${v.name}`) &&
            sameFp(v.rec.fp, facts) &&
            (!v.d.entries.has(v.name) || v.d.unfinished.has(v.name) || v.d.placeholders.get(v.name) === id),
        );
        const back = matches.length === 1 ? matches[0]! : null;
        if (back) claimed.add(`${back.d.rel}\0${back.name}`);
        add({
          kind: "link-orphan",
          severity: "problem",
          path: `/.pershome/links/${id}`,
          dir: linksRel,
          name: id,
          linkId: id,
          ...(back ? { to: `${back.d.rel}\0${back.name}` } : {}),
          message: `the data of a hard-linked file (${facts.size} bytes) that no name points to any more`,
          fix: back
            ? `puts it back as ${userPath(join(back.d.rel, back.name))}, where it came from`
            : `moves it to /${LOST_FOUND} (listed there)`,
        });
        continue;
      }
      const count = recOk ? (rec.nlink ?? 1) : 1;
      if (count !== names.length) {
        add({
          kind: "link-count",
          severity: "problem",
          path: names.map((n) => userPath(join(n.dir, n.name))).join(", "),
          dir: linksRel,
          name: id,
          linkId: id,
          count: names.length,
          message: `a hard-linked file with ${names.length} name(s), but its link count says ${count}${count > names.length ? " (a name was removed outside pershome, or a removal was interrupted)" : ""}`,
          fix: `sets the count to ${names.length}`,
        });
      }
    }
  }

  // the record of a file that goes back is right again: not stale
  report.findings = report.findings.filter(
    (f) => !(f.kind === "record-stale" && f.dir !== undefined && claimed.has(`${f.dir}\0${f.name}`)),
  );

  // --- records whose file is gone: renamed elsewhere (same size and time), or deleted
  const renamedTo = new Set<string>();
  for (const v of vanished) {
    if (claimed.has(`${v.d.rel}\0${v.name}`)) continue;
    const path = userPath(join(v.d.rel, v.name));
    if (v.rec.kind !== "d" && v.rec.kind !== "h" && v.rec.fp) {
      const free = [...(withoutRecord.get(v.d.rel) ?? [])].filter(
        (n) => !renamedTo.has(`${v.d.rel}\0${n}`) && sameFp(v.rec.fp, v.d.entries.get(n)!),
      );
      const rivals = vanished.filter(
        (w) => w !== v && w.d === v.d && free.some((n) => sameFp(w.rec.fp, v.d.entries.get(n)!)),
      );
      if (free.length === 1 && rivals.length === 0) {
        renamedTo.add(`${v.d.rel}\0${free[0]}`);
        add({
          kind: "record-renamed",
          severity: "problem",
          path,
          dir: v.d.rel,
          name: v.name,
          to: free[0]!,
          message: `this ${describeKind(v.rec.kind)} was renamed outside pershome to ${userPath(join(v.d.rel, free[0]!))}, which therefore shows as a plain file`,
          fix: `gives ${userPath(join(v.d.rel, free[0]!))} its ${v.rec.kind === "f" ? "permissions and times" : describeKind(v.rec.kind) + " record"} back`,
        });
        continue;
      }
    }
    add({
      kind: "record-vanished",
      severity: "problem",
      path,
      dir: v.d.rel,
      name: v.name,
      message:
        v.rec.kind === "h"
          ? "a name of a hard-linked file was deleted outside pershome; its record stayed behind"
          : `its record stayed behind, but the ${describeKind(v.rec.kind)} is gone (deleted or moved outside pershome)`,
      fix: "forgets the record",
    });
  }
  return report;
}

export function problems(r: Report): Finding[] {
  return r.findings.filter((f) => f.severity === "problem");
}
