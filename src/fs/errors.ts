import { constants } from "node:os";

export const E = constants.errno;

/**
 * An error that is meant for the caller as an errno, not a bug. It carries no stack trace:
 * nobody reads one (only bugs are logged with theirs), and capturing it made every failed
 * request (a missing user xattr, EEXIST, ENOTEMPTY...) cost 17–32 µs more than a success
 * (docs/benchmarks.md, "Ninth round").
 */
export class FsError extends Error {
  readonly errno: number;
  constructor(errno: number, message?: string) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message ?? `errno ${errno}`);
    Error.stackTraceLimit = limit;
    this.errno = errno;
  }
}

export function fail(errno: number, message?: string): never {
  throw new FsError(errno, message);
}

/** errno for an error thrown by a lower-filesystem call or by the layer; undefined for bugs. */
export function errnoOf(err: unknown): number | undefined {
  if (err instanceof FsError) return err.errno;
  const code = (err as { code?: unknown })?.code;
  // A stick that is gone (pulled, its driver dead) is an I/O error to the user.
  if (code === "ENOTCONN" || code === "ENODEV" || code === "ESHUTDOWN" || code === "ENXIO") return E.EIO;
  if (typeof code === "string" && code in E) return E[code as keyof typeof E];
  return undefined;
}

export function hasCode(err: unknown, code: string): boolean {
  return (err as { code?: unknown })?.code === code;
}
