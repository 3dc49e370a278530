/**
 * Log lines for admins: to stderr (the journal when run as a service), one line each,
 * "pershome[pid] level: message". Warnings about a stick's contents are rate-limited per key,
 * so a hostile stick cannot flood the log.
 */
type Level = "debug" | "info" | "warn" | "error";

let debugEnabled = process.env.PERSHOME_DEBUG === "1";
const warnedKeys = new Set<string>();

export function setDebug(on: boolean): void {
  debugEnabled = on;
}

export function log(level: Level, message: string): void {
  if (level === "debug" && !debugEnabled) return;
  process.stderr.write(`pershome[${process.pid}] ${level}: ${message}\n`);
}

/** Logs a warning once per key (e.g. once per damaged metadata file). */
export function warnOnce(key: string, message: string): void {
  if (warnedKeys.has(key)) return;
  if (warnedKeys.size > 10_000) warnedKeys.clear();
  warnedKeys.add(key);
  log("warn", message);
}

/** A byte-string path made printable for a log line. */
export function showPath(bytes: string): string {
  return JSON.stringify(Buffer.from(bytes, "latin1").toString("utf8"));
}
