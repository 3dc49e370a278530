/**
 * Logout's order, and what happens when it cannot be kept: unmount the layer (it writes
 * everything out and ends), then the stick; when programs hold the home past the wait, stop
 * them if configured, detach lazily, and clean up anyway.
 */
import fs from "node:fs";
import { type Context, dropUserDir, forwardLayerLog } from "./session-context.js";
import { sleep } from "./helpers.js";
import { stopLayer, waitLayerExit } from "./layer-daemon.js";
import { clearMessage } from "./notify.js";
import { type ProcessId, describeUses, processId, processesUsing, signal, waitGone } from "./processes.js";
import { lazyUnmount, syncStick, unmountPath } from "./stick-mount.js";
import { type UserState, removeState } from "./state.js";
import { stopHelper } from "./watch.js";
import { LAYER_FSTYPE, mountAt, mountsUnder } from "../system/mountinfo.js";

/** Unmounts the stick (after the layer is gone): sync, unmount, detach lazily if it stays busy. */
async function releaseStick(ctx: Context, s: UserState): Promise<void> {
  const j = ctx.journal;
  if (s.stick.kind !== "device") {
    j.info(`stick folder ${s.stick.root} is the admin's fixed path; not unmounted by pershome`);
    return;
  }
  const root = s.stick.root;
  if (!mountAt(root)) {
    j.info(`stick mount ${root} was already gone`);
  } else {
    const synced = await syncStick(root);
    if (synced.exitCode !== 0) j.warn(`flushing the stick failed: ${synced.summary}`);
    let outcome = (await unmountPath(root)).outcome;
    for (let i = 0; outcome === "busy" && i < 20; i++) {
      await sleep(250);
      outcome = (await unmountPath(root)).outcome;
    }
    if (outcome === "unmounted" || outcome === "not-mounted") {
      j.info(`unmounted the stick ${s.stick.device} from ${root}: it is safe to pull`);
    } else {
      const r = await lazyUnmount(root);
      j.warn(
        `the stick ${s.stick.device} could not be unmounted cleanly (${outcome}); detached it lazily` +
          `${r && r.exitCode !== 0 ? ` (${r.summary})` : ""}: do not pull it until nothing uses it`,
      );
    }
  }
  try {
    fs.rmdirSync(root);
  } catch {
    /* still a mountpoint (lazy) or already gone */
  }
}

/** Forgets the mount: state, helper units, the state directory. Call with the lock held. */
function forget(ctx: Context, s: UserState): void {
  forwardLayerLog(ctx, s.user);
  // A message about this mount (a pulled stick, two sticks) is over with it.
  clearMessage(ctx.cfg.messageDir, s.user);
  removeState(ctx.cfg.stateDir, s.user);
  dropUserDir(ctx, s.user);
}

/**
 * One clean attempt at the logout order: unmount the layer (it writes everything out and ends),
 * then the stick. "busy" leaves everything as it was.
 */
export async function tryTeardown(ctx: Context, s: UserState): Promise<"done" | "busy"> {
  const j = ctx.journal;
  const t0 = Date.now();
  if (mountAt(s.home)?.fstype === LAYER_FSTYPE) {
    const { outcome, result } = await unmountPath(s.home);
    if (outcome === "busy" || outcome === "failed") {
      if (outcome === "failed")
        j.warn(`unmounting the layer from ${s.home} failed: ${result?.summary ?? ""}`);
      return "busy";
    }
    j.info(`unmounted the layer from ${s.home}`);
  } else {
    j.info(`the layer was no longer mounted on ${s.home}`);
  }
  if (await waitLayerExit(s.layer, ctx.cfg.flushTimeout)) {
    j.info(`the layer wrote everything to the stick and ended (${Date.now() - t0} ms)`);
  } else {
    j.warn(
      `the layer was still writing after ${ctx.cfg.flushTimeout}s (flush_timeout): ${await stopLayer(s.layer, s.home, 5)}`,
    );
  }
  await releaseStick(ctx, s);
  forget(ctx, s);
  return "done";
}

/** The end of the bounded wait: stop what still uses the home (if configured), detach, clean up anyway. */
export async function forceTeardown(ctx: Context, s: UserState, why: string): Promise<void> {
  const j = ctx.journal;
  await stopHelper(s.watcher, s.watcherUnit);
  const uses = processesUsing(s.home);
  j.warn(`${why}; still using ${s.home}: ${uses.length ? describeUses(uses) : "nothing found"}`);
  if (ctx.cfg.killLeftovers) {
    const mine = uses
      .filter((u) => u.uid === s.uid)
      .map((u) => processId(u.pid))
      .filter((p): p is ProcessId => p !== null);
    if (mine.length > 0) {
      for (const p of mine) signal(p, "SIGTERM");
      if (!(await waitGone(mine, 3000))) for (const p of mine) signal(p, "SIGKILL");
      await waitGone(mine, 2000);
      j.info(`kill_leftovers: ended the user's processes in the home: ${mine.map((p) => p.pid).join(", ")}`);
      if ((await tryTeardown(ctx, s)) === "done") return;
    }
  }
  if (mountAt(s.home)?.fstype === LAYER_FSTYPE) {
    const r = await lazyUnmount(s.home);
    j.info(`detached the layer from ${s.home} lazily${r && r.exitCode !== 0 ? ` (${r.summary})` : ""}`);
  }
  // SIGTERM makes the daemon end its session and write everything out even while programs still
  // hold files in the detached home (they get "Transport endpoint is not connected" from now on).
  j.info(`stopping the layer: ${await stopLayer(s.layer, s.home, ctx.cfg.flushTimeout)}`);
  for (const m of mountsUnder(s.home)
    .filter((m) => m.fstype === LAYER_FSTYPE)
    .reverse())
    await lazyUnmount(m.mountpoint);
  await releaseStick(ctx, s);
  forget(ctx, s);
}
