// Command-line handling shared by the bench's entry points (main, ab, git-remount, mem-ab):
// node:util's parseArgs, `--help`, and a bad option told in one line with the usage (exit 64,
// as pershome's own CLI does), not a stack trace.
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

export class UsageError extends Error {}

type Spec = Record<string, { type: "string" | "boolean"; short?: string }>;
type Values<S extends Spec> = { [K in keyof S]?: S[K]["type"] extends "string" ? string : boolean };

/** Parses argv against `spec` (plus --help/-h, which prints `usage` and exits 0). */
export function options<S extends Spec>(argv: string[], spec: S, usage: string): Values<S> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options: { ...spec, help: { type: "boolean", short: "h" } } }));
  } catch (e) {
    // parseArgs's messages already name the option ("Unknown option '--x'", "... argument missing").
    throw new UsageError((e as Error).message.split("\n")[0]!);
  }
  if (values["help"]) {
    process.stdout.write(usage.trimEnd() + "\n");
    process.exit(0);
  }
  return values as Values<S>;
}

/** A comma-separated list whose items must be among `allowed`; `fallback` if not given. */
export function listOf<T extends string>(
  option: string,
  value: string | undefined,
  allowed: readonly T[],
  fallback: readonly T[],
): T[] {
  if (value === undefined) return [...fallback];
  const items = value.split(",").filter(Boolean);
  const bad = items.filter((x) => !(allowed as readonly string[]).includes(x));
  if (items.length === 0 || bad.length > 0)
    throw new UsageError(
      `--${option}: ${bad.length ? `unknown ${bad.join(", ")}` : "empty"}; choose from ${allowed.join(", ")}`,
    );
  return items as T[];
}

/** One value among `allowed`; `fallback` if not given. */
export function oneOf<T extends string>(
  option: string,
  value: string | undefined,
  allowed: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value))
    throw new UsageError(`--${option}: unknown ${value}; choose one of ${allowed.join(", ")}`);
  return value as T;
}

/** A whole number, a multiple of `step` (1: any) and at least `step`; `fallback` if not given. */
export function wholeNumber(option: string, value: string | undefined, fallback: number, step = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < step)
    throw new UsageError(`--${option}: "${value}" is not a whole number of at least ${step}`);
  if (n % step !== 0) throw new UsageError(`--${option}: ${n} is not a multiple of ${step}`);
  return n;
}

/** Another build's CLI (dist/src/cli/main.js), made absolute; it must exist. */
export function buildPath(option: string, value: string | undefined): string {
  if (!value) throw new UsageError(`--${option} <another checkout's dist/src/cli/main.js> is required`);
  const p = path.resolve(value);
  if (!fs.existsSync(p))
    throw new UsageError(`--${option}: ${p} does not exist (run npm run build in that checkout)`);
  return p;
}

/** Runs an entry point: a UsageError prints its message and the usage (exit 64), anything else its stack (exit 1). */
export function runMain(usage: string, main: () => Promise<void>): void {
  main().catch((e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`${e.message}\n\n${usage.trimEnd()}\n`);
      process.exit(64);
    }
    console.error(e instanceof Error ? e.stack : e);
    process.exit(1);
  });
}
