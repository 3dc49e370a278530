/**
 * What is mounted for a user, kept in <state_dir>/<user>/state.json (root only), written
 * atomically under the user's lock. The sessions list is the reference count: one entry per
 * open PAM session, the last one to leave unmounts.
 */
import fs from "node:fs";
import { type ProcessId, isRunning } from "./processes.js";

export interface SessionEntry {
  /** the PAM application process that opened the session (pam_exec's parent) */
  app: ProcessId | null;
  service: string;
  tty: string;
  rhost: string;
  opened: string;
}

export interface StickInfo {
  /** "device": we mounted a block device; "fixed": an admin-given folder (stick_path) */
  kind: "device" | "fixed";
  device: string;
  label: string;
  fstype: string;
  /** where the stick's root is (our private mount, or the fixed folder) */
  root: string;
  driver: string;
}

export interface LayerInfo {
  kind: "direct" | "systemd";
  process: ProcessId | null;
  unit: string;
}

export interface UserState {
  version: 1;
  user: string;
  uid: number;
  gid: number;
  home: string;
  /** the stick's pershome folder the layer serves */
  lower: string;
  stick: StickInfo;
  layer: LayerInfo;
  watcher: ProcessId | null;
  watcherUnit: string;
  /** a fresh id for each mount, so a watcher of an older mount knows it is obsolete */
  generation: string;
  phase: "open" | "closing";
  mountedAt: string;
  sessions: SessionEntry[];
}

export function userDir(stateDir: string, user: string): string {
  return `${stateDir}/${user}`;
}

export function stateFile(stateDir: string, user: string): string {
  return `${userDir(stateDir, user)}/state.json`;
}

export function readState(stateDir: string, user: string): UserState | null {
  try {
    const s = JSON.parse(fs.readFileSync(stateFile(stateDir, user), "utf8")) as UserState;
    return s.version === 1 && s.user === user && Array.isArray(s.sessions) ? s : null;
  } catch {
    return null;
  }
}

export function writeState(stateDir: string, s: UserState): void {
  const file = stateFile(stateDir, s.user);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(s, null, 2) + "\n", { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export function removeState(stateDir: string, user: string): void {
  fs.rmSync(stateFile(stateDir, user), { force: true });
}

/**
 * Which entry a closing session is. The same application process first (sshd, display
 * managers and login open and close in one process); else an entry whose process is gone
 * (a program that opened the session in one process and closes it in another, like two
 * pamtester runs), preferring the same service. Null: this session was never counted.
 */
export function matchSession(entries: SessionEntry[], app: ProcessId | null, service: string): number {
  if (app) {
    const same = entries.findIndex((e) => e.app?.pid === app.pid && e.app.start === app.start);
    if (same >= 0) return same;
  }
  const gone = entries.map((e, i) => ({ e, i })).filter(({ e }) => !isRunning(e.app));
  const sameService = gone.find(({ e }) => e.service === service);
  return (sameService ?? gone[0])?.i ?? -1;
}
