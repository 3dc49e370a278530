/**
 * What every stick tool shares: the exit codes, the one error type that carries a plain message
 * and a machine-readable reason, and how a result is printed (words for people, --json for
 * scripts). See docs/stick-tools.md.
 */
import { bytesToStored, decodeName } from "../format/names.js";

/** Exit codes of the stick tools (documented in docs/stick-tools.md and every --help). */
export const EXIT = {
  /** done; for check: the stick is in order (after --repair: it is now) */
  ok: 0,
  /** could not do it, or refused: the message says why and what to do */
  failed: 1,
  /** check found problems and left them as they are (or --repair could not fix them all) */
  problems: 2,
  /** migrate was interrupted: run the same command again to continue */
  interrupted: 130,
  /** bad usage */
  usage: 64,
} as const;

/** Why a command refused or failed, for --json (stable words scripts can test). */
export type Reason =
  | "not-found"
  | "not-a-stick"
  | "not-fat"
  | "read-only"
  | "full"
  | "newer-format"
  | "garbage-marker"
  | "not-prepared"
  | "in-use"
  | "pulled"
  | "io-error"
  | "mount-failed"
  | "source"
  | "cancelled"
  | "no-stick";

/** A failure the user can act on: `message` says what happened and what to do next. */
export class StickError extends Error {
  constructor(
    readonly reason: Reason,
    message: string,
    readonly exitCode: number = EXIT.failed,
  ) {
    super(message);
  }
}

/** The user's name of a stored path relative to the home (byte string) -> printable text. */
export function userPath(storedRel: string): string {
  if (storedRel === "") return "/";
  const parts = storedRel.split("/").map((p) => {
    const u = bytesToStored(p);
    const user = u === null ? p : decodeName(u);
    return Buffer.from(user, "latin1").toString("utf8");
  });
  return "/" + parts.join("/");
}

/** A byte string (latin1) path -> Buffer for fs calls. */
export const bp = (p: string): Buffer => Buffer.from(p, "latin1");

/** A normal (UTF-8) string -> byte string. */
export const bs = (s: string): string => Buffer.from(s, "utf8").toString("latin1");

/** A byte string -> normal text for messages. */
export const txt = (b: string): string => Buffer.from(b, "latin1").toString("utf8");

export function errCode(err: unknown): string | undefined {
  const c = (err as { code?: unknown })?.code;
  return typeof c === "string" ? c : undefined;
}

/** Sizes for people: 1.5 GiB, 320 KiB, 12 bytes. */
export function humanBytes(n: number): string {
  if (n < 1024) return `${n} byte${n === 1 ? "" : "s"}`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

export function humanDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return "?";
  sec = Math.round(sec);
  if (sec < 60) return `${sec}s`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m ${String(sec % 60).padStart(2, "0")}s`;
  return `${Math.floor(sec / 3600)}h ${String(Math.floor((sec % 3600) / 60)).padStart(2, "0")}m`;
}

/** Where results go: text for people, or one JSON object on stdout for scripts. */
export class Output {
  constructor(
    readonly json: boolean,
    private readonly out: NodeJS.WritableStream = process.stdout,
    private readonly err: NodeJS.WritableStream = process.stderr,
  ) {}

  /** A line for people (nothing in --json mode). */
  say(line = ""): void {
    if (!this.json) this.out.write(line + "\n");
  }

  /** A warning for people; in --json mode it goes to stderr as plain text too. */
  warn(line: string): void {
    this.err.write(`pershome: ${line}\n`);
  }

  /** The result object, in --json mode. */
  result(obj: Record<string, unknown>): void {
    if (this.json) this.out.write(JSON.stringify(obj, null, 2) + "\n");
  }

  /** A failure: the plain message on stderr, or {ok:false,...} on stdout with --json. */
  fail(e: StickError, extra: Record<string, unknown> = {}): number {
    if (this.json)
      this.out.write(
        JSON.stringify({ ok: false, reason: e.reason, message: e.message, ...extra }, null, 2) + "\n",
      );
    else this.err.write(`pershome: ${e.message}\n`);
    return e.exitCode;
  }
}
