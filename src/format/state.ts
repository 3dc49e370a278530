/**
 * `.pershome/state`: an advisory, append-only log of mounts and clean unmounts, so `pershome
 * status` can tell when the stick was last used and whether that use ended cleanly. Same line
 * format as the metadata logs (`<crc32 of the JSON, 8 hex> <JSON>\n`), so a torn last line (the
 * stick pulled mid-append) is recognised and skipped. Losing this file loses nothing else.
 */
import { crc32 } from "node:zlib";

export const STATE_FILE = "state";
/** At mount, a log bigger than this is started afresh (it is history, not data). */
export const STATE_MAX_BYTES = 64 * 1024;

export interface StateEvent {
  ev: "mount" | "umount";
  /** ISO 8601 time */
  t: string;
  /** the computer's name (mount lines) */
  host?: string;
  /** the pershome version (mount lines) */
  ver?: string;
}

export function stateLine(e: StateEvent): string {
  const json = JSON.stringify(e);
  return crc32(json).toString(16).padStart(8, "0") + " " + json + "\n";
}

/** The valid events of a state log, oldest first; damaged or unknown lines are skipped. */
export function parseStateLog(text: string): StateEvent[] {
  const out: StateEvent[] = [];
  for (const line of text.split("\n")) {
    const m = /^([0-9a-f]{8}) (\{.*\})$/.exec(line);
    if (!m || crc32(m[2]!) !== parseInt(m[1]!, 16)) continue;
    try {
      const o = JSON.parse(m[2]!) as Record<string, unknown>;
      if ((o.ev === "mount" || o.ev === "umount") && typeof o.t === "string") {
        out.push({
          ev: o.ev,
          t: o.t,
          ...(typeof o.host === "string" ? { host: o.host } : {}),
          ...(typeof o.ver === "string" ? { ver: o.ver } : {}),
        });
      }
    } catch {
      /* a damaged line is skipped */
    }
  }
  return out;
}
