import { execa } from "execa";
import { execFileSync } from "node:child_process";
import { requireTool } from "../microvm/host-tools.js";

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs a host tool (looked up with an apt hint if missing); never throws on a non-zero exit. */
export async function runTool(
  tool: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<RunResult> {
  const r = await execa(requireTool(tool), args, { env, reject: false, stdin: "ignore" });
  if (r.failed && r.exitCode === undefined) throw new Error(`${tool}: ${r.message}`);
  return { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Like runTool, but throws with the tool's output when it fails. */
export async function mustRun(
  tool: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<RunResult> {
  const r = await runTool(tool, args, env);
  if (r.exitCode !== 0) {
    throw new Error(
      `${tool} ${args.join(" ")} failed (exit ${r.exitCode}): ${(r.stderr || r.stdout).trim()}`,
    );
  }
  return r;
}

/** Runs a host tool and returns its stdout as raw bytes (for file contents). */
export async function runToolBuffer(
  tool: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<Buffer> {
  const r = await execa(requireTool(tool), args, {
    env,
    reject: false,
    stdin: "ignore",
    encoding: "buffer",
    stripFinalNewline: false,
  });
  if (r.exitCode !== 0) {
    throw new Error(
      `${tool} ${args.join(" ")} failed (exit ${String(r.exitCode)}): ${Buffer.from(r.stderr).toString().trim()}`,
    );
  }
  return Buffer.from(r.stdout);
}

let utf8Locale: string | undefined;

/** A UTF-8 locale for tools that convert file names through the locale (mtools). */
export function utf8LocaleName(): string {
  if (utf8Locale) return utf8Locale;
  let found = "C.UTF-8";
  try {
    const list = execFileSync("locale", ["-a"], { encoding: "utf8" }).split("\n");
    found = list.find((l) => /^C\.utf-?8$/i.test(l)) ?? list.find((l) => /\.utf-?8$/i.test(l)) ?? found;
  } catch {
    /* no locale(1): C.UTF-8 is built into glibc >= 2.35 and shipped by Debian's libc-bin */
  }
  utf8Locale = found;
  return found;
}
