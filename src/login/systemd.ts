/** Whether systemd runs this machine, and the names the login integration uses with it. */
import fs from "node:fs";
import type { SystemdMode } from "./config.js";

/** sd_booted(): systemd is PID 1 exactly when /run/systemd/system exists. */
export function systemdIsInit(): boolean {
  return fs.existsSync("/run/systemd/system");
}

export function useSystemd(mode: SystemdMode): boolean {
  return mode === "yes" || (mode === "auto" && systemdIsInit());
}

/** systemd-escape for an instance name (user names may hold "-", "." or "@"). */
export function escapeInstance(s: string): string {
  let out = "";
  const bytes = Buffer.from(s, "utf8");
  bytes.forEach((b, i) => {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9:_]/.test(c) || (c === "." && i > 0)) out += c;
    else if (c === "/") out += "-";
    else out += `\\x${b.toString(16).padStart(2, "0")}`;
  });
  return out;
}

export function layerUnit(user: string): string {
  return `pershome@${escapeInstance(user)}.service`;
}

export function watcherUnit(user: string): string {
  return `pershome-watch-${escapeInstance(user)}.service`;
}

export function logoutUnit(user: string): string {
  return `pershome-logout-${escapeInstance(user)}.service`;
}
