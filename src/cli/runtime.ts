/** Where a running mount leaves its pid and log, so `pershome umount` can find its daemon. */
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

export function runtimeDir(): string {
  const uid = process.getuid?.() ?? 0;
  if (uid === 0) return "/run/pershome";
  const xdg = process.env.XDG_RUNTIME_DIR;
  return xdg ? path.join(xdg, "pershome") : `/tmp/pershome-${uid}`;
}

function key(mountpoint: string): string {
  let real = mountpoint;
  try {
    real = fs.realpathSync(mountpoint);
  } catch {
    real = path.resolve(mountpoint);
  }
  return createHash("sha256").update(real).digest("hex").slice(0, 16);
}

export function pidFile(mountpoint: string): string {
  return path.join(runtimeDir(), key(mountpoint) + ".pid");
}

export function logFile(mountpoint: string): string {
  return path.join(runtimeDir(), key(mountpoint) + ".log");
}

export function ensureRuntimeDir(): void {
  fs.mkdirSync(runtimeDir(), { recursive: true, mode: 0o700 });
}

export function readPid(mountpoint: string): number | null {
  try {
    const pid = Number(fs.readFileSync(pidFile(mountpoint), "utf8").trim());
    return Number.isInteger(pid) && pid > 1 ? pid : null;
  } catch {
    return null;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
