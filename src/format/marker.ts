/** The format marker, .pershome/format (docs/format.md, "The marker"). Pure. */

export const FORMAT_VERSION = 1;
export const AREA_DIR = ".pershome";
export const MARKER_FILE = "format";

export interface Marker {
  version: number;
  created?: string;
}

export type MarkerCheck =
  | { ok: true; marker: Marker }
  | { ok: false; reason: "newer"; version: number }
  | { ok: false; reason: "garbage" };

export function makeMarker(created = new Date()): string {
  return (
    JSON.stringify({ format: "pershome", version: FORMAT_VERSION, created: created.toISOString() }) + "\n"
  );
}

export function checkMarker(text: Buffer): MarkerCheck {
  let o: unknown;
  try {
    o = JSON.parse(text.subarray(0, 4096).toString("utf8"));
  } catch {
    return { ok: false, reason: "garbage" };
  }
  if (typeof o !== "object" || o === null) return { ok: false, reason: "garbage" };
  const { format, version, created } = o as Record<string, unknown>;
  if (format !== "pershome" || typeof version !== "number" || !Number.isInteger(version) || version < 1) {
    return { ok: false, reason: "garbage" };
  }
  if (version > FORMAT_VERSION) return { ok: false, reason: "newer", version };
  return { ok: true, marker: { version, ...(typeof created === "string" ? { created } : {}) } };
}
