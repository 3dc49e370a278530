/**
 * The watcher: one small process per mounted stick home that notices when the stick is pulled
 * or its driver dies during the session (the stick mount vanishes, its device node goes away,
 * or the filesystem stops answering), logs it, and tells the user through the desktop notifier.
 */
import fs from "node:fs";
import type { LoginConfig } from "./config.js";
import { sleep, statfsWithin } from "./helpers.js";
import type { Journal } from "./journal.js";
import { layerMounted, layerRunning } from "./layer-daemon.js";
import { mountAt } from "../system/mountinfo.js";
import { leaveMessage, messages } from "./notify.js";
import { type ProcessId, signal } from "./processes.js";
import { runCommand } from "./run.js";
import { type UserState, readState } from "./state.js";

export interface HealthProblem {
  /** "stick": the stick or its driver is gone; "layer": the layer's mount or daemon is */
  what: "stick" | "layer";
  why: string;
}

/** Null when the stick home works; otherwise what is wrong. */
export async function checkHealth(s: UserState): Promise<HealthProblem | null> {
  const stick = (why: string): HealthProblem => ({ what: "stick", why });
  const layer = (why: string): HealthProblem => ({ what: "layer", why });
  if (s.stick.kind === "device") {
    if (!mountAt(s.stick.root)) return stick(`the stick mount ${s.stick.root} is gone`);
    if (!fs.existsSync(s.stick.device)) return stick(`the device ${s.stick.device} is gone (stick pulled)`);
    const why = await statfsWithin(s.stick.root, 5000);
    if (why) return stick(`the stick at ${s.stick.root} does not answer (${why})`);
  }
  const lowerWhy = await statfsWithin(s.lower, 5000);
  if (lowerWhy) return stick(`${s.lower} does not answer (${lowerWhy})`);
  // A dead daemon leaves a dead mount (ENOTCONN); if something took the mount away, the normal
  // home would show through: both mean the layer is lost.
  if (!layerMounted(s.home)) return layer(`the layer is no longer mounted on ${s.home}`);
  if (!(await layerRunning(s.layer))) return layer("the layer's daemon is gone");
  return null;
}

export async function runWatcher(
  cfg: LoginConfig,
  journal: Journal,
  user: string,
  generation: string,
): Promise<void> {
  journal.context = `user=${user}`;
  for (;;) {
    await sleep(cfg.watchInterval * 1000);
    const s = readState(cfg.stateDir, user);
    if (!s || s.generation !== generation || s.phase !== "open") return;
    const problem = await checkHealth(s);
    if (problem === null) continue;
    // Read again: a logout may have started while we looked.
    const again = readState(cfg.stateDir, user);
    if (!again || again.generation !== generation || again.phase !== "open") return;
    journal.warn(
      problem.what === "stick"
        ? `stick ${s.stick.device} lost during the session: ${problem.why}; the user was told to put it back or log out`
        : `the home on stick ${s.stick.device} stopped during the session: ${problem.why}; the user was told to log out`,
    );
    if (cfg.notify) {
      try {
        const text = problem.what === "stick" ? messages.pulled(s.stick) : messages.layerLost(s.stick);
        leaveMessage(cfg.messageDir, user, s.uid, s.gid, text);
      } catch (err) {
        journal.warn(`could not leave the message for the notifier: ${(err as Error).message}`);
      }
    }
    return;
  }
}

/** Stops a watcher (or a waiting logout helper) that belongs to this mount. */
export async function stopHelper(p: ProcessId | null, unit: string): Promise<void> {
  if (p) signal(p, "SIGTERM");
  if (unit) await runCommand("systemctl", ["stop", "--no-block", unit], { timeoutSec: 10 });
}
