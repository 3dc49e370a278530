/**
 * Metadata records and the per-directory log that holds them (docs/format.md, "Metadata").
 * Pure: parsing and serialising only. Everything read here comes off an untrusted stick, so
 * every field is checked and anything unexpected is dropped, never trusted.
 */
import { crc32 } from "node:zlib";
import { isAscii } from "./names.js";

export type Kind = "f" | "d" | "l" | "p" | "s" | "h";
const KINDS = new Set<string>(["f", "d", "l", "p", "s", "h"]);

export type Timespec = readonly [sec: number, nsec: number];

export interface MetaRecord {
  /** stored name, as a byte string */
  name: string;
  kind: Kind;
  mode?: number;
  mtime?: Timespec;
  atime?: Timespec;
  ctime?: Timespec;
  /** xattr name -> value (names as byte strings) */
  xattrs?: Map<string, Buffer>;
  /** symlink target, byte string */
  target?: string;
  /** hard-link id (kind "h"), or the id of a record in .pershome/links */
  linkId?: string;
  nlink?: number;
  /** [size, mtimeMs] of the stored file when the record was written */
  fp?: readonly [number, number];
  /** the layer was writing the file when this record was written */
  writing?: boolean;
}

export const LOG_VERSION = 1;
export const MAX_LOG_BYTES = 64 * 1024 * 1024;
export const MAX_LINE_BYTES = 1024 * 1024;
export const MAX_XATTR_VALUE = 65536;
export const MAX_XATTR_TOTAL = 256 * 1024;
const LINK_ID = /^[0-9a-f]{16,32}$/;

// ---- serialising ---------------------------------------------------------------------

function bytesField(out: Record<string, unknown>, key: string, value: string): void {
  const buf = Buffer.from(value, "latin1");
  const text = buf.toString("utf8");
  if (Buffer.from(text, "utf8").equals(buf)) out[key] = text;
  else out[key + "b"] = buf.toString("base64");
}

function recordToJson(r: MetaRecord): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  bytesField(o, "n", r.name);
  o.k = r.kind;
  if (r.mode !== undefined) o.m = r.mode;
  if (r.mtime) o.t = r.mtime;
  if (r.atime) o.a = r.atime;
  if (r.ctime) o.c = r.ctime;
  if (r.xattrs && r.xattrs.size > 0) {
    const x: Record<string, string> = {};
    for (const [k, v] of r.xattrs) x[Buffer.from(k, "latin1").toString("base64")] = v.toString("base64");
    o.x = x;
  }
  if (r.target !== undefined) bytesField(o, "l", r.target);
  if (r.linkId !== undefined) o.h = r.linkId;
  if (r.nlink !== undefined) o.nl = r.nlink;
  if (r.fp) o.fp = r.fp;
  if (r.writing) o.w = 1;
  return o;
}

function line(obj: unknown): string {
  const json = JSON.stringify(obj);
  return crc32(json).toString(16).padStart(8, "0") + " " + json + "\n";
}

export function recordLine(r: MetaRecord): string {
  return line(recordToJson(r));
}

export function tombstoneLine(name: string): string {
  const o: Record<string, unknown> = {};
  bytesField(o, "n", name);
  o.del = 1;
  return line(o);
}

/** A complete log: header, snapshot, end line. Appends may follow. */
export function snapshotText(gen: number, records: Iterable<MetaRecord>): string {
  let body = "";
  let count = 0;
  for (const r of records) {
    body += recordLine(r);
    count++;
  }
  return line({ pershome: "meta", v: LOG_VERSION, gen }) + body + line({ end: count });
}

// ---- parsing -------------------------------------------------------------------------

const isInt = (v: unknown, min: number, max: number): v is number =>
  typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;

function timespec(v: unknown): Timespec | undefined {
  if (!Array.isArray(v) || v.length !== 2) return undefined;
  const [s, ns] = v as unknown[];
  return isInt(s, -(2 ** 40), 2 ** 40) && isInt(ns, 0, 999_999_999) ? [s, ns] : undefined;
}

function bytesFrom(o: Record<string, unknown>, key: string): string | undefined {
  const t = o[key];
  if (typeof t === "string") return isAscii(t) ? t : Buffer.from(t, "utf8").toString("latin1");
  const b = o[key + "b"];
  if (typeof b === "string") return Buffer.from(b, "base64").toString("latin1");
  return undefined;
}

/** A single path component the layer may touch. */
export function isSafeName(name: string): boolean {
  return name.length > 0 && name.length <= 1024 && name !== "." && name !== ".." && !/[/\0]/.test(name);
}

type Parsed =
  | { type: "record"; record: MetaRecord }
  | { type: "tombstone"; name: string }
  | { type: "header"; gen: number }
  | { type: "end"; count: number };

/**
 * A record read from a log. The fields most records have are set, undefined when absent, by
 * a constructor, so that V8 keeps them inside the object; added one by one to a literal they
 * would go to a second array (a daemon that listed a home of 100,000 files holds that many
 * records). The rare fields are added after it.
 */
class ReadRecord implements MetaRecord {
  constructor(
    public name: string,
    public kind: Kind,
    public mode: number | undefined,
    public mtime: Timespec | undefined,
    public ctime: Timespec | undefined,
    public fp: readonly [number, number] | undefined,
  ) {}
}

/** Parses one object that passed its CRC. Returns null for anything not of the known shape. */
function parseObject(o: Record<string, unknown>): Parsed | null {
  if (o.pershome === "meta") {
    return isInt(o.v, 1, LOG_VERSION) && isInt(o.gen, 0, Number.MAX_SAFE_INTEGER)
      ? { type: "header", gen: o.gen }
      : null;
  }
  if ("end" in o) return isInt(o.end, 0, Number.MAX_SAFE_INTEGER) ? { type: "end", count: o.end } : null;
  const name = bytesFrom(o, "n");
  if (name === undefined || !isSafeName(name)) return null;
  if (o.del === 1) return { type: "tombstone", name };
  if (typeof o.k !== "string" || !KINDS.has(o.k)) return null;
  if (o.m !== undefined && !isInt(o.m, 0, 0o7777)) return null;
  const t = timespec(o.t);
  let c = timespec(o.c);
  // most files changed their data and attributes last at once: one array for both (memory)
  if (c && t && c[0] === t[0] && c[1] === t[1]) c = t;
  let fp: readonly [number, number] | undefined;
  if (o.fp !== undefined) {
    if (!Array.isArray(o.fp) || o.fp.length !== 2) return null;
    const [size, ms] = o.fp as unknown[];
    if (!isInt(size, 0, Number.MAX_SAFE_INTEGER) || !isInt(ms, -(2 ** 50), 2 ** 50)) return null;
    fp = [size, ms];
  }
  const r: MetaRecord = new ReadRecord(name, o.k as Kind, o.m as number | undefined, t, c, fp);
  const a = timespec(o.a);
  if (a) r.atime = a;
  if (o.x !== undefined) {
    if (typeof o.x !== "object" || o.x === null || Array.isArray(o.x)) return null;
    const x = new Map<string, Buffer>();
    let total = 0;
    for (const [k, v] of Object.entries(o.x as Record<string, unknown>)) {
      if (typeof v !== "string") return null;
      const key = Buffer.from(k, "base64").toString("latin1");
      const val = Buffer.from(v, "base64");
      total += key.length + val.length;
      if (!key.startsWith("user.") || val.length > MAX_XATTR_VALUE || total > MAX_XATTR_TOTAL) return null;
      x.set(key, val);
    }
    r.xattrs = x;
  }
  const target = bytesFrom(o, "l");
  if (target !== undefined) {
    if (target.length === 0 || target.length > 4095 || target.includes("\0")) return null;
    r.target = target;
  }
  if (o.h !== undefined) {
    if (typeof o.h !== "string" || !LINK_ID.test(o.h)) return null;
    r.linkId = o.h;
  }
  if (r.kind === "h" && r.linkId === undefined) return null;
  if (r.kind === "l" && r.target === undefined) return null;
  if (o.nl !== undefined) {
    if (!isInt(o.nl, 0, 2 ** 31)) return null;
    r.nlink = o.nl;
  }
  if (o.w === 1) r.writing = true;
  return { type: "record", record: r };
}

export interface ParsedLog {
  /** generation from the header; -1 if there is no valid header */
  gen: number;
  /** header and end-of-snapshot line both present and valid */
  complete: boolean;
  /** stored name (byte string) -> latest record */
  records: Map<string, MetaRecord>;
  /** lines that failed their CRC or shape check */
  badLines: number;
  /** appended records after the snapshot (a hint for when to compact) */
  appended: number;
  /**
   * Earlier fingerprinted records of each name, superseded by a later record or tombstone
   * (latest last, at most MAX_OLDER): a crash can keep a record that was written ahead of
   * the stick's own change (a rename over the name, a file replaced), and then the earlier
   * record is the one that matches the file found (docs/format.md, "Crash safety").
   */
  older: Map<string, MetaRecord[]>;
}

export const MAX_OLDER = 4;

/** Parses a whole log. Never throws: damage only makes it ignore lines. */
export function parseLog(text: Buffer): ParsedLog {
  const result: ParsedLog = {
    gen: -1,
    complete: false,
    records: new Map(),
    badLines: 0,
    appended: 0,
    older: new Map(),
  };
  const supersede = (name: string): void => {
    const prev = result.records.get(name);
    if (!prev || (!prev.fp && prev.kind !== "d")) return;
    const list = result.older.get(name) ?? [];
    list.push(prev);
    if (list.length > MAX_OLDER) list.shift();
    result.older.set(name, list);
  };
  let start = 0;
  let first = true;
  let snapshotCount = 0;
  while (start < text.length) {
    let nl = text.indexOf(0x0a, start);
    const torn = nl < 0;
    if (torn) nl = text.length;
    const raw = text.subarray(start, nl);
    start = nl + 1;
    if (torn || raw.length > MAX_LINE_BYTES || raw.length < 10 || raw[8] !== 0x20) {
      if (raw.length > 0) result.badLines++;
      first = false;
      continue;
    }
    const json = raw.subarray(9);
    const crc = parseInt(raw.subarray(0, 8).toString("latin1"), 16);
    let parsed: Parsed | null = null;
    if (crc32(json) === crc) {
      try {
        const o: unknown = JSON.parse(json.toString("utf8"));
        if (typeof o === "object" && o !== null && !Array.isArray(o))
          parsed = parseObject(o as Record<string, unknown>);
      } catch {
        parsed = null;
      }
    }
    if (parsed === null) {
      result.badLines++;
      first = false;
      continue;
    }
    if (first) {
      first = false;
      if (parsed.type !== "header") return { ...result, badLines: result.badLines + 1 };
      result.gen = parsed.gen;
      continue;
    }
    switch (parsed.type) {
      case "header":
        result.badLines++;
        break;
      case "end":
        if (!result.complete && parsed.count === snapshotCount) result.complete = true;
        else result.badLines++;
        break;
      case "record":
        supersede(parsed.record.name);
        result.records.set(parsed.record.name, parsed.record);
        if (result.complete) result.appended++;
        else snapshotCount++;
        break;
      case "tombstone":
        supersede(parsed.name);
        result.records.delete(parsed.name);
        if (result.complete) result.appended++;
        else result.badLines++;
        break;
    }
  }
  return result;
}
