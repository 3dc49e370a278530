// Mounting the layer under test: spawns `pershome mount <lower> <mnt> --foreground`, waits for
// its ready line, and guarantees the mount goes away again (CLI umount, then SIGTERM, then
// SIGKILL + umount -l), even when a test fails.
//
// PERSHOME_TEST_FAKE=bindfs mounts a plain bindfs (nosuid,nodev) instead, to check the tests'
// own logic against a filesystem that passes POSIX behaviour straight through: every test that
// looks at the stick's format must then fail, every pure-POSIX test on a plain lower must pass.

import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { killSync, lazyUnmountSync, track } from "./cleanup.js";
import type { Lower } from "./lower.js";
import { isMounted, mountAt } from "./mountinfo.js";
import { run, sleep, tail, waitFor, type Cred, type RunResult } from "./run.js";

export const REPO = fileURLToPath(new URL("../../", import.meta.url)).replace(/\/$/, "");
export const CLI = process.env.PERSHOME_CLI ?? join(REPO, "dist/src/cli/main.js");
export const FAKE = process.env.PERSHOME_TEST_FAKE ?? "";

/** Slow machines (the TCG micro-VM) get longer waits. */
export const SLOW = Number(process.env.PERSHOME_TEST_SLOW ?? (process.env.PERSHOME_LOWER === "vfat" ? 4 : 1));

export interface MountOptions {
  /** --owner UID:GID: files shown as owned by this user */
  owner?: Cred;
  /** --allow-other: other users (the unprivileged test user) may use the mount */
  allowOther?: boolean;
  extraArgs?: string[];
  /** how long to wait for the ready line; default 30 s (× SLOW) */
  readyTimeoutMs?: number;
  env?: Record<string, string>;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StopResult extends ExitInfo {
  /** the `umount` command's result, when stopped through it */
  umount?: RunResult;
  /** true when the daemon had to be killed */
  forced: boolean;
  /** true when the mount was still there after the daemon ended */
  leftMounted: boolean;
  /** the daemon was still running (not even a zombie) when the umount command returned */
  runningAfterUmount?: boolean;
}

export type StopHow = "cli" | "sigterm" | "umount";

export interface Layer {
  readonly mnt: string;
  readonly lowerDir: string;
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  /** undefined while running */
  exitInfo(): ExitInfo | undefined;
  alive(): boolean;
  stdout(): string;
  stderr(): string;
  /** Unmounts (by default through `pershome umount`) and waits for the daemon to end. */
  stop(how?: StopHow): Promise<StopResult>;
  /** SIGKILL, as a crash; then detaches the dead mount (umount -l). */
  kill9(): Promise<void>;
}

export class MountFailed extends Error {
  constructor(
    message: string,
    readonly exit: ExitInfo | undefined,
    readonly stderr: string,
    readonly stdout: string,
  ) {
    super(message);
  }
}

const READY = "pershome: ready ";

function cliArgs(lowerDir: string, mnt: string, o: MountOptions): string[] {
  const a = [CLI, "mount", lowerDir, mnt, "--foreground"];
  if (o.owner) a.push("--owner", `${o.owner.uid}:${o.owner.gid}`);
  if (o.allowOther) a.push("--allow-other");
  return [...a, ...(o.extraArgs ?? [])];
}

/**
 * Starts the daemon on `lower` (its `pershome` directory), mounted at `<lower.work>/mnt` unless
 * `mnt` is given; or on a lower directory and mountpoint given as paths. Resolves once the daemon
 * says it is ready; rejects with MountFailed (stderr included) if it exits first or does not get
 * ready in time.
 */
export async function mountLayer(lower: Lower, o?: MountOptions & { mnt?: string }): Promise<Layer>;
export async function mountLayer(lowerDir: string, mnt: string, o?: MountOptions): Promise<Layer>;
export async function mountLayer(
  a: Lower | string,
  b?: string | (MountOptions & { mnt?: string }),
  c?: MountOptions,
): Promise<Layer> {
  if (typeof a !== "string") {
    const o = (b as (MountOptions & { mnt?: string }) | undefined) ?? {};
    const mnt = o.mnt ?? join(a.work, "mnt");
    mkdirSync(mnt, { recursive: true, mode: 0o755 });
    return startLayer(a.dir, mnt, o);
  }
  return startLayer(a, b as string, c ?? {});
}

async function startLayer(lowerDir: string, mnt: string, o: MountOptions): Promise<Layer> {
  const fake = FAKE === "bindfs";
  if (!fake && !existsSync(CLI))
    throw new Error(`pershome is not built: ${CLI} is missing (run \`npm run build\` in ${REPO})`);
  const [file, args] = fake
    ? [
        "bindfs",
        ["-f", "-o", ["nosuid", "nodev", ...(o.allowOther ? ["allow_other"] : [])].join(","), lowerDir, mnt],
      ]
    : [process.execPath, cliArgs(lowerDir, mnt, o)];
  const child = spawn(file, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...(o.env ?? {}) },
  });
  let out = "";
  let err = "";
  const keep = (s: string, add: string): string => {
    const t = s + add;
    return t.length > 2_000_000 ? t.slice(-1_000_000) : t;
  };
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out = keep(out, d)));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (err = keep(err, d)));
  let exit: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((res) => {
    child.once("exit", (code, signal) => {
      exit = { code, signal };
      res(exit);
    });
    child.once("error", (e) => {
      err += `\n(spawn failed: ${e.message})`;
      exit = { code: -1, signal: null };
      res(exit);
    });
  });
  const pid = child.pid ?? 0;
  const untrack = track({
    what: `pershome daemon ${pid} on ${mnt}`,
    undo: () => {
      if (!exit) killSync(pid);
      lazyUnmountSync(mnt);
    },
  });

  const timeoutMs = (o.readyTimeoutMs ?? 30_000) * SLOW;
  const ready = await Promise.race([
    waitFor(
      () =>
        fake ? mountAt(mnt)?.fsType.startsWith("fuse") : out.split("\n").some((l) => l.startsWith(READY)),
      timeoutMs,
      20,
    ).then((ok) => (ok ? "ready" : "timeout")),
    exited.then(() => "exited"),
  ]);
  if (ready !== "ready") {
    if (!exit) {
      killSync(pid);
      await exited;
    }
    if (isMounted(mnt)) lazyUnmountSync(mnt);
    untrack();
    const why =
      ready === "timeout"
        ? `no ready line within ${timeoutMs} ms`
        : `daemon exited (${fmtExit(exit)}) before it was ready`;
    throw new MountFailed(
      `mount of ${lowerDir} on ${mnt} failed: ${why}\n--- stderr ---\n${tail(err)}\n--- stdout ---\n${tail(out)}`,
      exit,
      err,
      out,
    );
  }

  const layer: Layer = {
    mnt,
    lowerDir,
    pid,
    exited,
    exitInfo: () => exit,
    alive: () => exit === undefined,
    stdout: () => out,
    stderr: () => err,
    async stop(how: StopHow = "cli"): Promise<StopResult> {
      let umount: RunResult | undefined;
      let runningAfterUmount: boolean | undefined;
      if (!exit) {
        if (fake) {
          umount = await run("umount", [mnt], { timeoutMs: 30_000 });
        } else if (how === "cli") {
          umount = await run(process.execPath, [CLI, "umount", mnt], { timeoutMs: 60_000 * SLOW });
          runningAfterUmount = processRunning(pid);
        } else if (how === "umount") {
          umount = await run("umount", [mnt], { timeoutMs: 30_000 });
        } else {
          killSync(pid, "SIGTERM");
        }
      }
      let forced = false;
      const ended = await Promise.race([exited, sleep(30_000 * SLOW).then(() => undefined)]);
      if (!ended) {
        forced = true;
        killSync(pid, "SIGKILL");
        await exited;
      }
      const leftMounted = isMounted(mnt);
      if (leftMounted) lazyUnmountSync(mnt);
      untrack();
      const e = exit ?? { code: null, signal: null };
      return {
        ...e,
        forced,
        leftMounted,
        ...(umount ? { umount } : {}),
        ...(runningAfterUmount !== undefined ? { runningAfterUmount } : {}),
      };
    },
    async kill9(): Promise<void> {
      killSync(pid, "SIGKILL");
      await exited;
      // The dead connection stays mounted (ENOTCONN) until detached.
      if (isMounted(mnt)) await run("umount", ["-l", mnt]);
      untrack();
    },
  };
  return layer;
}

/**
 * The FUSE requests a daemon received since its last report, by kernel opcode name. The daemon
 * must run with PERSHOME_FUSE_COUNTS=1: it logs them on SIGUSR2; this asks and waits for the line.
 */
export async function requestsSinceLast(layer: Layer): Promise<Record<string, number>> {
  const reports = (): number => layer.stderr().split("FUSE requests:").length;
  const before = reports();
  process.kill(layer.pid, "SIGUSR2");
  for (let i = 0; i < 100 && reports() === before; i++) await new Promise((r) => setTimeout(r, 50));
  if (reports() === before) throw new Error("the daemon wrote no request counts (PERSHOME_FUSE_COUNTS=1?)");
  const last = layer.stderr().split("FUSE requests:").at(-1) ?? "";
  return JSON.parse(/^\s*(\{[^}]*\})/.exec(last)?.[1] ?? "{}") as Record<string, number>;
}

/** The process exists and is not a zombie (a zombie has ended; only its parent has not reaped it). */
export function processRunning(pid: number): boolean {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, "utf8");
    return st.slice(st.lastIndexOf(")") + 2, st.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

export function fmtExit(e: ExitInfo | undefined): string {
  if (!e) return "running";
  return e.signal ? `signal ${e.signal}` : `code ${String(e.code)}`;
}
