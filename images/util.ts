// Small helpers for the image builders: hashing, running processes with their output logged,
// the Debian mirror apt uses here, and cache entries that are either complete or absent.
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { projectRoot } from "../lab/microvm/cache.js";

export type Log = (line: string) => void;

export const ROOT = projectRoot();
/** Files of this directory (scripts, init, agent) as found from src or dist. */
export const IMAGES_SRC = join(ROOT, "images");

export function sha256(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** A short key over a JSON-able description of the inputs. */
export function keyOf(inputs: unknown): string {
  return sha256(JSON.stringify(inputs)).slice(0, 20);
}

export function fileHash(path: string): string {
  return sha256(readFileSync(path));
}

/** sha256 of every file under a directory of images/ (names and contents, sorted). */
export function dirHash(dir: string): string {
  const h = createHash("sha256");
  const walk = (d: string, rel: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p, `${rel}${name}/`);
      else h.update(`${rel}${name}\0`).update(readFileSync(p)).update("\0");
    }
  };
  walk(dir, "");
  return h.digest("hex");
}

/** sha256 over files of images/ (relative paths), names and contents. */
export function filesHash(rel: readonly string[]): string {
  const h = createHash("sha256");
  for (const r of rel)
    h.update(`${r}\0`)
      .update(readFileSync(join(IMAGES_SRC, r)))
      .update("\0");
  return h.digest("hex");
}

/** Runs a command, streaming its stdout/stderr to `log` line by line (prefixed), throwing on failure. */
export async function run(
  log: Log,
  prefix: string,
  cmd: string,
  args: readonly string[],
  opts: { env?: Record<string, string>; cwd?: string; input?: string } = {},
): Promise<string> {
  const child = execa(cmd, args, {
    cwd: opts.cwd ?? ROOT,
    env: { LANG: "C.UTF-8", DEBIAN_FRONTEND: "noninteractive", ...opts.env },
    all: true,
    buffer: { all: true, stdout: true },
    lines: false,
    reject: false,
    ...(opts.input !== undefined ? { input: opts.input } : { stdin: "ignore" as const }),
  });
  let tail: string[] = [];
  let partial = "";
  child.all?.on("data", (chunk: Buffer) => {
    const text = partial + chunk.toString("utf8");
    const lines = text.split("\n");
    partial = lines.pop() ?? "";
    for (const l of lines) {
      log(`${prefix} ${l}`);
      tail.push(l);
      if (tail.length > 40) tail = tail.slice(-40);
    }
  });
  const r = await child;
  if (partial) log(`${prefix} ${partial}`);
  if (r.exitCode !== 0) {
    throw new Error(
      `${prefix} ${cmd} ${args.join(" ")} failed (exit ${r.exitCode ?? r.signal}):\n${tail.join("\n")}`,
    );
  }
  return typeof r.stdout === "string" ? r.stdout : "";
}

/** The Debian mirror apt uses on this machine (as test/package/make-root.sh finds it). */
export function debianMirror(): string {
  const dirs = ["/etc/apt/sources.list.d"];
  for (const d of dirs) {
    let names: string[] = [];
    try {
      names = readdirSync(d);
    } catch {
      continue;
    }
    for (const n of names.filter((x) => x.endsWith(".sources")).sort()) {
      for (const line of readFileSync(join(d, n), "utf8").split("\n")) {
        const m = /^URIs:\s*(\S+)/.exec(line);
        if (m?.[1] && /\/debian\/*$/.test(m[1])) return m[1];
      }
    }
  }
  try {
    for (const line of readFileSync("/etc/apt/sources.list", "utf8").split("\n")) {
      const m = /^deb\s+(\S+)\s+bookworm\s/.exec(line);
      if (m?.[1]) return m[1];
    }
  } catch {
    /* none */
  }
  return "http://deb.debian.org/debian";
}

export function labCacheDir(override?: string): string {
  return override ?? process.env.PERSHOME_LAB_CACHE ?? join(ROOT, ".cache", "lab");
}

export interface Entry {
  dir: string;
  key: string;
  built: boolean;
  ms: number;
}

/**
 * A cache entry <cache>/<kind>-<key>/: returned as is when it has its `.complete` marker; otherwise
 * any half-built leftover is removed, `build(dir)` fills a fresh directory, and the marker is
 * written last. Older entries of the same kind are removed after a successful build.
 */
export async function cached(
  cacheDir: string,
  kind: string,
  key: string,
  log: Log,
  build: (dir: string) => Promise<void>,
): Promise<Entry> {
  const t0 = performance.now();
  const dir = join(cacheDir, `${kind}-${key}`);
  if (existsSync(join(dir, ".complete"))) {
    // the marker's mtime is the entry's last use (pruning spares recently used entries)
    const now = new Date();
    utimesSync(join(dir, ".complete"), now, now);
    log(`[${kind}] cached ${dir}`);
    return { dir, key, built: false, ms: performance.now() - t0 };
  }
  mkdirSync(cacheDir, { recursive: true });
  await removeTree(dir, log);
  mkdirSync(dir);
  log(`[${kind}] building ${dir}`);
  await build(dir);
  writeFileSync(join(dir, ".complete"), new Date().toISOString() + "\n");
  const ms = performance.now() - t0;
  log(`[${kind}] built in ${(ms / 1000).toFixed(1)} s`);
  await prune(cacheDir, kind, `${kind}-${key}`, log);
  return { dir, key, built: true, ms };
}

/** Entries unused for this long are removed when another entry of their kind is built. */
export const PRUNE_AFTER_MS = 3 * 3600_000;

/**
 * Removes the other entries of `kind` that were not used (built or found) in PRUNE_AFTER_MS: a
 * lab started a while ago may still be serving an older boot directory or server root.
 */
async function prune(cacheDir: string, kind: string, keep: string, log: Log): Promise<void> {
  for (const n of readdirSync(cacheDir)) {
    if (!n.startsWith(`${kind}-`) || n === keep || n.endsWith(".lock")) continue;
    const p = join(cacheDir, n);
    let used = 0;
    try {
      used = statSync(join(p, ".complete")).mtimeMs;
    } catch {
      used = statSync(p).mtimeMs; // a half-built leftover (builds hold the cache lock)
    }
    if (Date.now() - used > PRUNE_AFTER_MS) await removeTree(p, log);
  }
}

/**
 * Runs `fn` holding <cacheDir>/.lock (a directory with the holder's pid): one build at a time per
 * cache, so two labs started together do not build (or delete) the same entry. A lock whose
 * holder is gone is taken over.
 */
export async function withCacheLock<T>(cacheDir: string, log: Log, fn: () => Promise<T>): Promise<T> {
  mkdirSync(cacheDir, { recursive: true });
  const lock = join(cacheDir, ".lock");
  let told = false;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, "pid"), String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      let pid = NaN;
      try {
        pid = Number(readFileSync(join(lock, "pid"), "utf8"));
      } catch {
        /* being written, or a crash between mkdir and write */
      }
      let alive = false;
      if (Number.isInteger(pid) && pid > 0) {
        try {
          process.kill(pid, 0);
          alive = true;
        } catch {
          alive = false;
        }
      } else {
        alive = Date.now() - statSync(lock).mtimeMs < 10_000;
      }
      if (!alive) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (!told) log(`[lab-images] waiting for the build by pid ${pid} (${lock})`);
      told = true;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** rm -rf that first unmounts anything left mounted below (a crashed build's /proc, overlay). */
export async function removeTree(dir: string, log: Log): Promise<void> {
  if (!existsSync(dir)) return;
  const mounts = readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[1]?.replace(/\\040/g, " "))
    .filter((m): m is string => !!m && (m === dir || m.startsWith(dir + "/")))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await run(log, "[umount]", "umount", ["-l", m]).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
}

export function atomicWrite(path: string, data: string | Buffer, mode = 0o644): void {
  const tmp = `${path}.tmp${process.pid}`;
  writeFileSync(tmp, data, { mode });
  renameSync(tmp, path);
}
