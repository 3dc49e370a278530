/** `pershome mount` and `pershome umount`. */
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { MountError, startMount } from "../fs/mount.js";
import { log, setDebug } from "../log.js";
import { ensureRuntimeDir, isAlive, logFile, pidFile, readPid } from "./runtime.js";

export interface MountArgs {
  lowerDir: string;
  mountpoint: string;
  foreground: boolean;
  owner?: string;
  allowOther: boolean;
  debug: boolean;
  cacheTimeout?: number;
  autoUnmount?: boolean;
  pollMicros?: number;
}

export class UsageError extends Error {}

function parseOwner(owner: string | undefined): { uid: number; gid: number } {
  if (owner === undefined) return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  const m = /^(\d+):(\d+)$/.exec(owner);
  if (!m) throw new UsageError(`--owner wants UID:GID (numbers), not "${owner}"`);
  return { uid: Number(m[1]), gid: Number(m[2]) };
}

export async function mountCommand(a: MountArgs): Promise<number> {
  const { uid, gid } = parseOwner(a.owner);
  if (!fs.existsSync(a.mountpoint))
    throw new MountError(`The mount point ${a.mountpoint} does not exist; create it first.`);
  if (!a.foreground) return detach();
  setDebug(a.debug);
  // Anything that touches the mount point (realpath here) must happen before the mount:
  // afterwards this very thread serves the mount and would wait on itself.
  ensureRuntimeDir();
  const pid = pidFile(a.mountpoint);
  const running = startMount({
    lowerDir: a.lowerDir,
    mountpoint: a.mountpoint,
    uid,
    gid,
    allowOther: a.allowOther || uid !== (process.getuid?.() ?? 0),
    debug: a.debug,
    autoUnmount: a.autoUnmount ?? false,
    ...(a.cacheTimeout !== undefined ? { cacheTimeout: a.cacheTimeout } : {}),
    ...(a.pollMicros !== undefined ? { pollMicros: a.pollMicros } : {}),
  });
  fs.writeFileSync(pid, `${process.pid}\n`);
  for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    process.on(sig, () => {
      log("info", `${sig}: unmounting ${a.mountpoint}`);
      running.unmount();
    });
  }
  // The readiness line a service manager or a script waits for.
  process.stdout.write(`pershome: ready ${a.mountpoint}\n`);
  if (process.env.NOTIFY_SOCKET)
    spawnSync("systemd-notify", ["--ready", `--pid=${process.pid}`], { stdio: "ignore" });
  await running.done;
  fs.rmSync(pid, { force: true });
  return 0;
}

/** Starts the same command in the foreground as a detached daemon and waits until it is ready. */
async function detach(): Promise<number> {
  ensureRuntimeDir();
  const args = [...process.execArgv, process.argv[1]!, ...process.argv.slice(2), "--foreground"];
  const mountpoint = process.argv.slice(2).filter((s) => !s.startsWith("-"))[2] ?? "";
  const logPath = logFile(mountpoint);
  const errFd = fs.openSync(logPath, "a", 0o600);
  const child = spawn(process.execPath, args, { detached: true, stdio: ["ignore", "pipe", errFd] });
  fs.closeSync(errFd);
  const ready = await new Promise<boolean>((resolve) => {
    let out = "";
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("pershome: ready")) resolve(true);
    });
    child.on("exit", () => resolve(false));
  });
  child.stdout?.destroy();
  child.unref();
  if (!ready) {
    const tail = fs.readFileSync(logPath, "utf8").trim().split("\n").slice(-5).join("\n");
    process.stderr.write(`pershome: the mount did not start:\n${tail}\n`);
    return 1;
  }
  process.stdout.write(`pershome: mounted (daemon ${child.pid}, log ${logPath})\n`);
  return 0;
}

/** Is `pid` (from the pid file, which a crash leaves behind) still this mount's daemon? */
function isDaemonOf(pid: number, mountpoint: string): boolean {
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    if (!argv.includes("mount")) return false;
    const cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
    const want = fs.realpathSync(mountpoint);
    return argv.some((a) => {
      try {
        return a.length > 0 && fs.realpathSync(path.resolve(cwd, a)) === want;
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

export async function umountCommand(mountpoint: string, lazy: boolean, timeoutSec: number): Promise<number> {
  const pid = readPid(mountpoint);
  const r = spawnSync("fusermount3", ["-u", ...(lazy ? ["-z"] : []), mountpoint], { encoding: "utf8" });
  if (r.status !== 0) {
    const why = (r.stderr || r.error?.message || "").trim();
    if (/busy/i.test(why)) {
      process.stderr.write(
        `pershome: ${mountpoint} is still in use, so it was not unmounted. Close the programs using it ` +
          `(see: fuser -vm ${mountpoint}) or use --lazy.\n`,
      );
      return 2;
    }
    process.stderr.write(`pershome: could not unmount ${mountpoint}: ${why}\n`);
    return 1;
  }
  if (pid !== null) {
    // The kernel tells the daemon its mount is gone only when the last copy of the mount goes.
    // A mount namespace made meanwhile (a container, `unshare -m`, a sandboxed service) keeps
    // a copy that our umount does not reach: the daemon would serve on, unaware, and this wait
    // would run out (seen as a 60 s hang of the tests beside other work). So a daemon still
    // there after a moment is told directly; on SIGTERM it ends the session and writes
    // everything out, as after an unmount. (Not at once: a daemon already ending normally
    // could take the signal while Node exits, and end "killed by SIGTERM".)
    const grace = Date.now() + Math.min(2000, timeoutSec * 1000);
    while (isAlive(pid) && Date.now() < grace) await sleep(50);
    if (!lazy && isDaemonOf(pid, mountpoint)) {
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        // already gone
      }
    }
    const deadline = Date.now() + timeoutSec * 1000;
    while (isAlive(pid) && Date.now() < deadline) await sleep(50);
    if (isAlive(pid)) {
      process.stderr.write(
        `pershome: unmounted, but the daemon (${pid}) is still writing after ${timeoutSec}s; wait before pulling the stick.\n`,
      );
      return 3;
    }
  }
  process.stdout.write(`pershome: unmounted ${mountpoint}; everything is written to the stick.\n`);
  return 0;
}
