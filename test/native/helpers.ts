/**
 * Test support for the native addon: build it, and run the memfs fixture as a child
 * process (the test process does blocking fs calls on the mount, so the daemon must not
 * share its thread).
 */
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { PollStats } from "../../src/native/types.js";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const NATIVE_DIR = path.join(ROOT, "src/native");
export const ADDON = path.join(NATIVE_DIR, "build/Release/pershome_fuse.node");
/** what the addon is built from (a copy of these builds it elsewhere) */
export const NATIVE_SOURCES = [
  "fuse_ll.c",
  "fsync_many.c",
  "closer.c",
  "prefetch.c",
  "helper_thread.c",
  "helper_thread.h",
  "binding.gyp",
];
export const FIXTURE = path.join(ROOT, "test/native/fixtures/memfs.mjs");

/** npm's bundled node-gyp (`npx node-gyp` would try the registry: it is not a dependency). */
export function nodeGypPath(): string {
  const fromNpm = process.env["npm_config_node_gyp"];
  if (fromNpm && fs.existsSync(fromNpm)) return fromNpm;
  const candidates = [
    path.join(
      path.dirname(process.execPath),
      "../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js",
    ),
    "/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js",
    "/usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js",
  ];
  const found = candidates.find((c) => fs.existsSync(c));
  if (!found) throw new Error("node-gyp not found (it ships with npm)");
  return found;
}

/** Runs node-gyp rebuild in `dir`; nodedir = this Node's install prefix (headers are local). */
export function nodeGypRebuild(dir: string, env: NodeJS.ProcessEnv = {}): void {
  const nodedir = process.env["npm_config_nodedir"] ?? path.resolve(path.dirname(process.execPath), "..");
  const r = spawnSync(
    process.execPath,
    [nodeGypPath(), "rebuild", `--nodedir=${nodedir}`, "--directory", dir],
    {
      env: { ...process.env, ...env },
      encoding: "utf8",
    },
  );
  if (r.status !== 0) throw new Error(`node-gyp rebuild in ${dir} failed:\n${r.stdout}\n${r.stderr}`);
}

/** Builds the addon if it is missing or older than its sources. */
export function ensureAddon(): void {
  const built = fs.existsSync(ADDON) ? fs.statSync(ADDON).mtimeMs : 0;
  const src = Math.max(...NATIVE_SOURCES.map((f) => fs.statSync(path.join(NATIVE_DIR, f)).mtimeMs));
  if (built < src) nodeGypRebuild(NATIVE_DIR);
}

export function run(cmd: string, args: string[], input?: string): SpawnSyncReturns<Buffer> {
  return spawnSync(cmd, args, { input, timeout: 60_000 });
}

export function isMounted(mnt: string): boolean {
  const esc = mnt.replace(/[ \t\n\\]/g, (c) => "\\" + c.charCodeAt(0).toString(8).padStart(3, "0"));
  return fs
    .readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .some((l) => l.split(" ")[1] === esc);
}

export interface Stats {
  ops: Record<string, number>;
  requests: number;
  maxWrite: number;
  writeSizes: Record<string, number>;
  doubleReplyThrew: number;
  readdirplusCalls: number;
  readdirCalls: number;
  setattrValid: number[];
  init: { maxWrite: number; maxRead: number; maxReadahead: number; want: number } | null;
  cpuUserUs: number;
  cpuSystemUs: number;
  /** the addon's pollStats() at exit */
  poll: PollStats | null;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** the last "stats" line */
  stats: Stats | null;
  /** what onExit reported: "ok" or the error message; null if it never ran */
  exitLine: string | null;
}

export interface Memfs {
  mnt: string;
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** resolves when the child exits */
  exited: Promise<Exit>;
  /** SIGTERM (session.unmount()), then wait for the exit */
  stop(): Promise<Exit>;
  /** ask for a stats line (SIGUSR2) and wait for it */
  stats(): Promise<Stats>;
}

export interface StartOptions {
  env?: Record<string, string>;
  /** command prefix, e.g. ["valgrind", "-q"] */
  wrapper?: string[];
  readyTimeoutMs?: number;
  /** hand the mountpoint to this user (for unprivileged mounts) */
  owner?: { uid: number; gid: number };
}

const live = new Set<{ dir: string; mnt: string; child: ChildProcess }>();

function parseExit(code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string): Exit {
  const lines = stdout.split("\n");
  const statsLine = lines.filter((l) => l.startsWith("stats ")).pop();
  const exitLine = lines.find((l) => l.startsWith("exit "));
  return {
    code,
    signal,
    stdout,
    stderr,
    stats: statsLine ? (JSON.parse(statsLine.slice(6)) as Stats) : null,
    exitLine: exitLine ? exitLine.slice(5) : null,
  };
}

/** Starts the memfs fixture on a fresh mountpoint under /tmp and waits for "ready". */
export async function startMemfs(o: StartOptions = {}): Promise<Memfs> {
  const dir = fs.mkdtempSync("/tmp/pershome-native-");
  const mnt = path.join(dir, "mnt");
  fs.mkdirSync(mnt);
  if (o.owner) {
    fs.chmodSync(dir, 0o755);
    fs.chownSync(mnt, o.owner.uid, o.owner.gid);
  }
  const argv = [...(o.wrapper ?? []), process.execPath, "--expose-gc", FIXTURE, mnt];
  const child = spawn(argv[0]!, argv.slice(1), {
    env: { ...process.env, ...o.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const rec = { dir, mnt, child };
  live.add(rec);
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<Exit>((resolve) =>
    child.on("close", (code, signal) => resolve(parseExit(code, signal, out, err))),
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`memfs not ready after ${o.readyTimeoutMs ?? 20_000} ms:\n${out}\n${err}`)),
      o.readyTimeoutMs ?? 20_000,
    );
    const check = (): void => {
      if (out.split("\n").includes("ready")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on("data", check);
    void exited.then((e) => {
      clearTimeout(timer);
      reject(
        new Error(
          `memfs exited before ready (code ${e.code}, signal ${e.signal}):\n${e.stdout}\n${e.stderr}`,
        ),
      );
    });
  });
  const stats = async (): Promise<Stats> => {
    const before = out.length;
    child.kill("SIGUSR2");
    for (let i = 0; i < 500; i++) {
      const line = out
        .slice(before)
        .split("\n")
        .find((l) => l.startsWith("stats "));
      if (line) return JSON.parse(line.slice(6)) as Stats;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error("no stats line");
  };
  return {
    mnt,
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    stats,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      const e = await exited;
      clearTimeout(timer);
      return e;
    },
  };
}

/** Unmounts and kills whatever startMemfs left behind; call from afterEach. */
export async function cleanupMemfs(): Promise<void> {
  for (const rec of live) {
    if (isMounted(rec.mnt)) spawnSync("umount", ["-l", rec.mnt]);
    if (rec.child.exitCode === null && rec.child.signalCode === null) {
      rec.child.kill("SIGKILL");
      await new Promise((r) => rec.child.once("close", r));
    }
    // Never recursive: if the unmount failed, the files belong to someone else.
    try {
      fs.rmdirSync(rec.mnt);
      fs.rmdirSync(rec.dir);
    } catch {
      /* left for inspection */
    }
    live.delete(rec);
  }
}
