/**
 * What every step of a PAM session needs: the configuration and log, the request, and the
 * two ways of telling the user something (PAM's conversation now, the desktop notifier later).
 */
import fs from "node:fs";
import path from "node:path";
import type { Account } from "./account.js";
import type { LoginConfig } from "./config.js";
import type { Journal } from "./journal.js";
import { leaveMessage, tellPam } from "./notify.js";
import type { ProcessId } from "./processes.js";
import { type SessionEntry, stateFile, userDir } from "./state.js";
import { mountsUnder } from "../system/mountinfo.js";

export interface Context {
  cfg: LoginConfig;
  journal: Journal;
  /** the config file in use, handed on to the helpers the hook starts */
  configFile: string;
  systemd: boolean;
}

export interface PamRequest {
  user: string;
  service: string;
  tty: string;
  rhost: string;
  /** the PAM application process (pam_exec's parent) */
  app: ProcessId | null;
}

// ---------------------------------------------------------------- helpers

export function entryFor(req: PamRequest): SessionEntry {
  return {
    app: req.app,
    service: req.service,
    tty: req.tty,
    rhost: req.rhost,
    opened: new Date().toISOString(),
  };
}

export function describeSession(req: PamRequest): string {
  return [
    req.service || "?",
    req.tty,
    req.rhost ? `from ${req.rhost}` : "",
    req.app ? `pid ${req.app.pid}` : "",
  ]
    .filter(Boolean)
    .join(" ");
}

export function say(
  ctx: Context,
  a: Pick<Account, "name" | "uid" | "gid">,
  text: string,
  desktopToo: boolean,
): void {
  tellPam(text);
  if (!desktopToo || !ctx.cfg.notify) return;
  try {
    leaveMessage(ctx.cfg.messageDir, a.name, a.uid, a.gid, text);
  } catch (err) {
    ctx.journal.warn(`could not leave the message for the desktop notifier: ${(err as Error).message}`);
  }
}

/** Removes the user's state directory when nothing is mounted in it (never recursively). */
export function dropUserDir(ctx: Context, user: string): void {
  const dir = userDir(ctx.cfg.stateDir, user);
  if (fs.existsSync(stateFile(ctx.cfg.stateDir, user))) return;
  if (mountsUnder(dir).length > 0) {
    ctx.journal.warn(`${dir} still has mounts under it; left in place`);
    return;
  }
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const p = path.join(dir, n);
    try {
      if (fs.lstatSync(p).isDirectory()) fs.rmdirSync(p);
      else fs.unlinkSync(p);
    } catch (err) {
      ctx.journal.warn(`could not remove ${p}: ${(err as Error).message}`);
    }
  }
  try {
    fs.rmdirSync(dir);
  } catch {
    /* someone is about to use it again */
  }
}

/** Copies the layer's own output (direct mode keeps it in a file) into the log before it is removed. */
export function forwardLayerLog(ctx: Context, user: string): void {
  const file = `${userDir(ctx.cfg.stateDir, user)}/layer.log`;
  let text = "";
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return;
  }
  const lines = text.trim().split("\n").filter(Boolean);
  if (lines.length > 40) ctx.journal.info(`layer log: (${lines.length - 40} earlier lines left out)`);
  for (const l of lines.slice(-40)) ctx.journal.info(`layer log: ${l}`);
}
