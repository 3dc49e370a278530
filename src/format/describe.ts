/**
 * How an entry looks to the user: the stored file's own facts, overlaid with its record when
 * the record still applies (docs/format.md, "Defaults" and "Fingerprints"). Pure.
 */
import type { Kind, MetaRecord, Timespec } from "./records.js";

/** What the layer learned from lstat() of the stored entry. */
export interface StoredFacts {
  isDir: boolean;
  isFile: boolean;
  size: number;
  mtimeMs: number;
  mtime: Timespec;
}

export const DEFAULT_FILE_MODE = 0o644;
export const DEFAULT_DIR_MODE = 0o755;

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFIFO = 0o010000;
export const S_IFSOCK = 0o140000;

/** The type bits (S_IF*) of each kind. */
export const TYPE_OF: Record<Kind, number> = {
  f: S_IFREG,
  d: S_IFDIR,
  l: S_IFLNK,
  p: S_IFIFO,
  s: S_IFSOCK,
  h: S_IFREG,
};

export function fingerprint(facts: StoredFacts): [number, number] {
  return [facts.size, Math.floor(facts.mtimeMs)];
}

/** Does the record still describe this stored entry? */
export function recordApplies(record: MetaRecord, facts: StoredFacts): boolean {
  if (record.kind === "d") return facts.isDir;
  if (!facts.isFile) return false;
  if (record.writing) return true;
  return fingerprintMatches(record, facts);
}

/**
 * Does an earlier record of a name describe exactly this stored file (its fingerprint, not
 * "w", decides)? Used only to fall back from a latest record that does not apply.
 */
export function olderRecordMatches(record: MetaRecord, facts: StoredFacts): boolean {
  if (record.kind === "d") return facts.isDir;
  if (!facts.isFile) return false;
  return fingerprintMatches(record, facts);
}

function fingerprintMatches(record: MetaRecord, facts: StoredFacts): boolean {
  if (!record.fp) return false;
  const [size, ms] = fingerprint(facts);
  if (!sameStoredTime(record.fp[1], ms)) return false;
  return record.fp[0] === size || emptyLinkCopy(record, size);
}

/**
 * A symlink's stored copy of its target is written without an fsync (its target lives in the
 * record, docs/format.md rule 3), so a pull can leave the file empty, with the time it was
 * made: that is still the link. An empty file with another time is a user's, shown as such.
 */
function emptyLinkCopy(record: MetaRecord, size: number): boolean {
  return record.kind === "l" && size === 0;
}

const QUARTER_HOUR = 15 * 60 * 1000;

/**
 * Do two mtimes of a stored file (ms) mean "not changed"? FAT keeps 2 s steps and local time,
 * and a driver may show a finer time until the file is written out: so a difference within
 * 2 s counts as equal, and so does a whole number of quarter hours (up to a day, with the
 * same 2 s slack) — the same stick mounted under another time zone.
 */
export function sameStoredTime(a: number, b: number): boolean {
  const d = Math.abs(a - b);
  if (d <= 2000) return true;
  if (d > 26 * 3600 * 1000) return false;
  const r = d % QUARTER_HOUR;
  return Math.min(r, QUARTER_HOUR - r) <= 2000;
}

export interface Description {
  kind: Kind;
  /** file type and permission bits */
  mode: number;
  size: number;
  mtime: Timespec;
  atime: Timespec;
  ctime: Timespec;
}

/** The user's view of a stored entry; `record` must already have passed recordApplies(). */
export function describe(facts: StoredFacts, record: MetaRecord | undefined): Description {
  const kind: Kind = record ? record.kind : facts.isDir ? "d" : "f";
  const perm = record?.mode ?? (kind === "d" ? DEFAULT_DIR_MODE : kind === "l" ? 0o777 : DEFAULT_FILE_MODE);
  const mtime = record?.mtime ?? facts.mtime;
  let size = facts.size;
  if (kind === "l") size = Buffer.byteLength(record?.target ?? "", "latin1");
  else if (kind === "p" || kind === "s") size = 0;
  // Something that is neither a file nor a directory on the stick (a symlink on a plain
  // directory used as a stick): shown as an empty file, never followed.
  if (!facts.isDir && !facts.isFile && !record) size = 0;
  return {
    kind,
    mode: TYPE_OF[kind] | (perm & 0o7777),
    size,
    mtime,
    atime: record?.atime ?? mtime,
    ctime: record?.ctime ?? mtime,
  };
}
