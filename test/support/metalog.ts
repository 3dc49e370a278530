// Reading and forging the per-directory metadata logs of docs/format.md ("Metadata: one log per
// directory"), for the tests that look at or plant what is on a stick.
//
// Forged records are made from records the layer itself wrote (same fingerprint fields), so a
// test that expects a forged record to be *ignored* can first prove that a well-formed forged
// record is *honoured*: the CRC and the line shape here are the layer's, not a guess.

import { existsSync } from "node:fs";
import { readFile, writeFile, appendFile } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";

export const LOG_A = ".pershome.meta.a";
export const LOG_B = ".pershome.meta.b";

export type MetaRecord = Record<string, unknown> & { n?: string; nb?: string; k?: string; m?: number };

export interface LogLine {
  raw: string;
  crcOk: boolean;
  json: Record<string, unknown> | undefined;
}

export interface ParsedLog {
  path: string;
  lines: LogLine[];
  header: Record<string, unknown> | undefined;
  gen: number | undefined;
  /** index of the end-of-snapshot line, -1 if none */
  endIndex: number;
  complete: boolean;
  snapshot: MetaRecord[];
  appended: MetaRecord[];
  badLines: number;
}

/** `<crc32 of the JSON, 8 lower-case hex digits> <JSON>\n` */
export function logLine(obj: unknown): string {
  const json = JSON.stringify(obj);
  return `${crcHex(json)} ${json}\n`;
}

export function crcHex(json: string): string {
  return crc32(Buffer.from(json, "utf8")).toString(16).padStart(8, "0");
}

export function parseLog(text: string, path = "<log>"): ParsedLog {
  const rawLines = text.split("\n");
  if (rawLines[rawLines.length - 1] === "") rawLines.pop();
  const lines: LogLine[] = rawLines.map((raw) => {
    const m = /^([0-9a-f]{8}) (.*)$/s.exec(raw);
    if (!m) return { raw, crcOk: false, json: undefined };
    const crcOk = crcHex(m[2]!) === m[1];
    let json: Record<string, unknown> | undefined;
    try {
      const v: unknown = JSON.parse(m[2]!);
      if (v && typeof v === "object" && !Array.isArray(v)) json = v as Record<string, unknown>;
    } catch {
      json = undefined;
    }
    return { raw, crcOk, json };
  });
  const first = lines[0];
  const header = first?.crcOk && first.json?.pershome === "meta" ? first.json : undefined;
  const endIndex = lines.findIndex((l) => l.crcOk && l.json && typeof l.json.end === "number");
  const records = (from: number, to: number): MetaRecord[] =>
    lines
      .slice(from, to)
      .filter((l) => l.crcOk && l.json)
      .map((l) => l.json as MetaRecord);
  return {
    path,
    lines,
    header,
    gen: typeof header?.gen === "number" ? header.gen : undefined,
    endIndex,
    complete: header !== undefined && endIndex > 0,
    snapshot: endIndex > 0 ? records(1, endIndex) : [],
    appended: endIndex > 0 ? records(endIndex + 1, lines.length) : [],
    badLines: lines.filter((l) => !l.crcOk || !l.json).length,
  };
}

/** The log a reader would take in `lowerDir`: the complete slot with the highest gen. */
export async function readDirLog(lowerDir: string): Promise<ParsedLog | undefined> {
  const logs: ParsedLog[] = [];
  for (const slot of [LOG_A, LOG_B]) {
    const p = join(lowerDir, slot);
    if (!existsSync(p)) continue;
    logs.push(parseLog(await readFile(p, "utf8"), p));
  }
  const complete = logs.filter((l) => l.complete).sort((x, y) => (y.gen ?? 0) - (x.gen ?? 0));
  return complete[0];
}

/** The current state of each stored name in a log: the last record of a name wins. */
export function currentRecords(log: ParsedLog): Map<string, MetaRecord> {
  const out = new Map<string, MetaRecord>();
  for (const r of [...log.snapshot, ...log.appended]) {
    const key = recordName(r);
    if (key === undefined) continue;
    if (r.del) out.delete(key);
    else out.set(key, r);
  }
  return out;
}

/** A record's stored name (UTF-8), or its bytes as a latin1 string when given as "nb". */
export function recordName(r: MetaRecord): string | undefined {
  if (typeof r.n === "string") return r.n;
  if (typeof r.nb === "string") return Buffer.from(r.nb, "base64").toString("utf8");
  return undefined;
}

/** Writes a complete log (header, snapshot, end line, appended records) to `path`. */
export async function writeLog(
  path: string,
  opts: { gen?: number; snapshot?: unknown[]; appended?: unknown[]; extraHeader?: Record<string, unknown> },
): Promise<void> {
  const snapshot = opts.snapshot ?? [];
  const text =
    logLine({ pershome: "meta", v: 1, gen: opts.gen ?? 1, ...(opts.extraHeader ?? {}) }) +
    snapshot.map(logLine).join("") +
    logLine({ end: snapshot.length }) +
    (opts.appended ?? []).map(logLine).join("");
  await writeFile(path, text);
}

/** Appends records (each a full state of one entry) to an existing log. */
export async function appendRecords(path: string, records: unknown[]): Promise<void> {
  await appendFile(path, records.map(logLine).join(""));
}

/** The path of the slot the reader would take; throws when the directory has none. */
export async function currentLogPath(lowerDir: string): Promise<string> {
  const log = await readDirLog(lowerDir);
  if (!log) throw new Error(`no complete metadata log in ${lowerDir}`);
  return log.path;
}
