/**
 * A user's stick home across PAM sessions: the first session mounts (stick, then layer), later
 * ones share it, the last logout unmounts (layer, then stick) — all under the user's lock, with
 * the sessions list in the state file as the reference count. Lingering programs get a bounded
 * wait (in the background by default), then the home is detached anyway.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { type Account, lookupAccount } from "./account.js";
import { findStickHome } from "./find-stick-home.js";
import { type Helper, sleep, startHelper } from "./helpers.js";
import { startLayer, stopLayer } from "./layer-daemon.js";
import { type HeldLock, takeLock } from "./lock.js";
import { clearMessage, messages } from "./notify.js";
import { type OptInDecision, decideOptIn } from "./optin.js";
import { describeUses, processesUsing } from "./processes.js";
import {
  type Context,
  type PamRequest,
  describeSession,
  dropUserDir,
  entryFor,
  forwardLayerLog,
  say,
} from "./session-context.js";
import { lazyUnmount, unmountPath } from "./stick-mount.js";
import { logoutUnit, watcherUnit } from "./systemd.js";
import {
  type UserState,
  matchSession,
  readState,
  removeState,
  stateFile,
  userDir,
  writeState,
} from "./state.js";
import { forceTeardown, tryTeardown } from "./teardown.js";
import { checkHealth, stopHelper } from "./watch.js";
import { LAYER_FSTYPE, mountAt, mountsUnder } from "../system/mountinfo.js";

export type { Context, PamRequest } from "./session-context.js";

async function startWatcher(ctx: Context, user: string, generation: string): Promise<Helper | null> {
  if (!ctx.cfg.watch) return null;
  const h = await startHelper(
    ["--watch", user, "--generation", generation, "--config", ctx.configFile],
    ctx.systemd,
    watcherUnit(user),
  );
  if (typeof h === "string") {
    ctx.journal.warn(`the stick watcher did not start (${h}); a pulled stick will only be noticed at logout`);
    return null;
  }
  return h;
}

// ---------------------------------------------------------------- open

/** Undoes a half-finished open: whatever is mounted for the user goes, nothing is left behind. */
async function abandonOpen(ctx: Context, a: Account, dir: string): Promise<void> {
  if (mountAt(a.home)?.fstype === LAYER_FSTYPE) await lazyUnmount(a.home);
  for (const m of mountsUnder(dir).reverse()) {
    const r = await unmountPath(m.mountpoint, 30);
    if (r.outcome !== "unmounted" && r.outcome !== "not-mounted") await lazyUnmount(m.mountpoint);
    ctx.journal.info(`undid the mount on ${m.mountpoint} (${r.outcome})`);
  }
}

async function freshOpen(ctx: Context, a: Account, req: PamRequest, t0: number): Promise<void> {
  const { cfg, journal: j } = ctx;
  const dir = userDir(cfg.stateDir, a.name);

  // Leftovers of a crash (no state, yet something mounted): clear them first.
  for (const m of mountsUnder(dir).reverse()) {
    j.warn(`leftover mount ${m.mountpoint} (${m.fstype}) with no state; detaching it`);
    await lazyUnmount(m.mountpoint);
  }
  if (mountAt(a.home)?.fstype === LAYER_FSTYPE) {
    j.warn(`leftover pershome mount on ${a.home} with no state; detaching it`);
    await lazyUnmount(a.home);
  }

  if (!path.isAbsolute(a.home) || path.resolve(a.home) === "/") {
    j.warn(`home "${a.home}" is not a usable mount point; normal login`);
    return;
  }
  if (!fs.existsSync(a.home)) {
    fs.mkdirSync(a.home, { recursive: true, mode: 0o700 });
    fs.chownSync(a.home, a.uid, a.gid);
    j.info(`created the missing home ${a.home} as the mount point`);
  } else if (!fs.statSync(a.home).isDirectory()) {
    j.warn(`home ${a.home} is not a folder; normal login`);
    return;
  }
  const busy = processesUsing(a.home).filter((u) => u.uid === a.uid);
  if (busy.length > 0) {
    j.warn(`the user already uses the normal home (${describeUses(busy)}); not mounting the stick over it`);
    say(ctx, a, messages.otherSession(), true);
    return;
  }

  const found = await findStickHome(ctx, a, dir);
  if (!found.ok) {
    j.info(`${found.log}: normal home; the user was told how to fix it`);
    say(ctx, a, found.message, true);
    return;
  }
  const { stick } = found;
  j.context = `user=${a.name} stick=${stick.device}${stick.label ? ` "${stick.label}"` : ""}`;
  if (found.ignored.length > 0)
    j.info(
      `chose ${stick.device} by rule "${found.rule}" over ${found.ignored.map((s) => s.device).join(", ")}`,
    );

  const lower = `${stick.root}/pershome`;
  const started = await startLayer({
    user: a.name,
    uid: a.uid,
    gid: a.gid,
    lower,
    home: a.home,
    dir,
    systemd: ctx.systemd,
    timeoutSec: cfg.mountTimeout,
  });
  if (!started.ok) {
    j.error(
      `the layer did not start: ${started.why}; normal home` +
        (started.timedOut
          ? ` (it was still starting after mount_timeout = ${cfg.mountTimeout}s: raise it in /etc/pershome/pershome.conf if this machine or its sticks are slow)`
          : ""),
    );
    if (started.layer) await stopLayer(started.layer, a.home, 5);
    await abandonOpen(ctx, a, dir);
    forwardLayerLog(ctx, a.name);
    const newer = /newer pershome[^.]*\./.exec(started.why)?.[0];
    say(
      ctx,
      a,
      messages.stickFailed(
        found.chosen,
        newer
          ? `it was prepared by a ${newer.replace(/\.$/, "")}`
          : started.timedOut
            ? "it took too long to open"
            : "its pershome folder could not be opened",
      ),
      true,
    );
    return;
  }
  j.info(
    `layer mounted ${lower} on ${a.home} (owner ${a.uid}:${a.gid}, ${started.layer.kind === "systemd" ? started.layer.unit : `daemon pid ${started.layer.process?.pid ?? "?"}`}) in ${started.ms} ms`,
  );

  const generation = randomBytes(8).toString("hex");
  const state: UserState = {
    version: 1,
    user: a.name,
    uid: a.uid,
    gid: a.gid,
    home: a.home,
    lower,
    stick,
    layer: started.layer,
    watcher: null,
    watcherUnit: "",
    generation,
    phase: "open",
    mountedAt: new Date().toISOString(),
    sessions: [entryFor(req)],
  };
  writeState(cfg.stateDir, state);
  const w = await startWatcher(ctx, a.name, generation);
  if (w) {
    state.watcher = w.process;
    state.watcherUnit = w.unit;
    writeState(cfg.stateDir, state);
  }
  if (found.ignored.length > 0) {
    say(ctx, a, messages.twoSticks(found.chosen, found.ignored, found.rule), true);
  } else {
    clearMessage(cfg.messageDir, a.name);
    say(ctx, a, messages.onStick(found.chosen), false);
  }
  j.info(
    `session 1 opened (${describeSession(req)}); home ready ${Date.now() - t0} ms after the hook started`,
  );
}

export async function openSession(ctx: Context, req: PamRequest, t0 = Date.now()): Promise<void> {
  const { cfg, journal: j } = ctx;
  j.context = `user=${req.user}`;
  const a = await lookupAccount(req.user);
  if (!a) {
    j.info(`open (${describeSession(req)}): unknown user; nothing to do`);
    return;
  }
  if (a.uid < cfg.minUid) return; // root and system accounts: not even a log line per cron-like login
  // Not opted in and nothing mounted: leave without taking the lock or creating anything.
  let decision: OptInDecision | null = null;
  if (!fs.existsSync(stateFile(cfg.stateDir, a.name))) {
    decision = await decideOptIn(cfg, a, j);
    if (!decision.optedIn) {
      j.info(`open (${describeSession(req)}): not opted in (${decision.why}); normal home`);
      return;
    }
  }
  const dir = userDir(cfg.stateDir, a.name);
  let lock: HeldLock;
  try {
    lock = await takeLock(dir, cfg.lockTimeout);
  } catch (err) {
    j.error(`open: ${(err as Error).message}; normal home`);
    say(ctx, a, messages.stickFailed(null, "another login of yours is still being set up"), true);
    return;
  }
  try {
    const s = readState(cfg.stateDir, a.name);
    if (s) {
      j.context = `user=${a.name} stick=${s.stick.device}${s.stick.label ? ` "${s.stick.label}"` : ""}`;
      const problem = await checkHealth(s);
      if (problem === null) {
        const wasClosing = s.phase === "closing";
        s.sessions.push(entryFor(req));
        s.phase = "open";
        writeState(cfg.stateDir, s);
        if (wasClosing || (!s.watcher && !s.watcherUnit)) {
          const w = await startWatcher(ctx, a.name, s.generation);
          if (w) {
            s.watcher = w.process;
            s.watcherUnit = w.unit;
            writeState(cfg.stateDir, s);
          }
        }
        j.info(
          `session ${s.sessions.length} opened (${describeSession(req)}): sharing the mounted home` +
            (wasClosing ? " (it was waiting to be unmounted; kept)" : ""),
        );
        say(ctx, a, messages.shared(s.stick), false);
        return;
      }
      j.warn(
        `the mounted home is broken (${problem.why}); cleaning it up before mounting again` +
          (s.sessions.length ? ` (${s.sessions.length} older session(s) no longer counted)` : ""),
      );
      await forceTeardown(ctx, s, "replacing a broken mount");
    }
    // Decided before the lock when nothing was mounted; otherwise now (the old mount is gone).
    const d = decision ?? (await decideOptIn(cfg, a, j));
    if (!d.optedIn) {
      j.info(`open (${describeSession(req)}): not opted in (${d.why}); normal home`);
      return;
    }
    j.info(`open (${describeSession(req)}): opted in (${d.why})`);
    try {
      await freshOpen(ctx, a, req, t0);
    } catch (err) {
      j.error(`open failed: ${(err as Error).stack ?? String(err)}; undoing it, normal home`);
      await abandonOpen(ctx, a, dir);
      removeState(cfg.stateDir, a.name);
      say(ctx, a, messages.stickFailed(null, "an internal error, see the system log"), true);
    }
  } finally {
    if (!fs.existsSync(stateFile(cfg.stateDir, a.name))) dropUserDir(ctx, a.name);
    await lock.release();
  }
}

// ---------------------------------------------------------------- close

export async function closeSession(ctx: Context, req: PamRequest, t0 = Date.now()): Promise<void> {
  const { cfg, journal: j } = ctx;
  j.context = `user=${req.user}`;
  if (!fs.existsSync(stateFile(cfg.stateDir, req.user))) {
    j.info(`close (${describeSession(req)}): no stick home is mounted; nothing to do`);
    return;
  }
  const dir = userDir(cfg.stateDir, req.user);
  let lock: HeldLock;
  try {
    lock = await takeLock(dir, cfg.lockTimeout);
  } catch (err) {
    j.error(`close: ${(err as Error).message}; leaving the home mounted`);
    return;
  }
  let handOff = false;
  try {
    const s = readState(cfg.stateDir, req.user);
    if (!s) {
      j.info(`close (${describeSession(req)}): no stick home is mounted; nothing to do`);
      return;
    }
    j.context = `user=${s.user} stick=${s.stick.device}${s.stick.label ? ` "${s.stick.label}"` : ""}`;
    const i = matchSession(s.sessions, req.app, req.service);
    if (i < 0) {
      j.info(
        `close (${describeSession(req)}): this session was not counted (it did not get the current mount); nothing to do`,
      );
      return;
    }
    s.sessions.splice(i, 1);
    if (s.sessions.length > 0) {
      writeState(cfg.stateDir, s);
      j.info(
        `close (${describeSession(req)}): ${s.sessions.length} other session(s) still open; the home stays mounted`,
      );
      return;
    }
    j.info(`close (${describeSession(req)}): last session; unmounting (layer, then stick)`);
    s.phase = "closing";
    writeState(cfg.stateDir, s);
    await stopHelper(s.watcher, s.watcherUnit);
    s.watcher = null;
    s.watcherUnit = "";
    writeState(cfg.stateDir, s);
    if ((await tryTeardown(ctx, s)) === "done") {
      j.info(`logout complete in ${Date.now() - t0} ms`);
      return;
    }
    const uses = processesUsing(s.home);
    j.info(
      `the home is still in use (${uses.length ? describeUses(uses) : "by something not found in /proc"}); waiting up to ${cfg.logoutWait}s (logout_wait)`,
    );
    if (cfg.logoutWait === 0) {
      await forceTeardown(ctx, s, "logout_wait = 0");
      return;
    }
    if (cfg.logoutInBackground) {
      const h = await startHelper(
        ["--finish", s.user, "--config", ctx.configFile],
        ctx.systemd,
        logoutUnit(s.user),
      );
      if (typeof h !== "string") {
        j.info(
          `the wait continues in the background (${h.unit || `pid ${h.process?.pid ?? "?"}`}); the logout itself is done`,
        );
        return;
      }
      j.warn(`could not start the background wait (${h}); waiting here`);
    }
    handOff = true;
  } finally {
    await lock.release();
  }
  if (handOff) await finishLogout(ctx, req.user, Date.now() + cfg.logoutWait * 1000);
}

/**
 * The bounded wait after the last logout: retry the clean unmount until the home is free or
 * the deadline passes, then clean up anyway. Stops as soon as the user logs in again.
 */
export async function finishLogout(ctx: Context, user: string, deadline: number): Promise<void> {
  const { cfg, journal: j } = ctx;
  j.context = `user=${user}`;
  const dir = userDir(cfg.stateDir, user);
  const t0 = Date.now();
  for (;;) {
    let lock: HeldLock;
    try {
      lock = await takeLock(dir, cfg.lockTimeout);
    } catch (err) {
      j.warn(`logout wait: ${(err as Error).message}`);
      if (Date.now() > deadline + cfg.lockTimeout * 1000) return;
      continue;
    }
    let finished = true;
    try {
      const s = readState(cfg.stateDir, user);
      if (!s) {
        j.info("logout wait: the home was already cleaned up");
      } else if (s.phase !== "closing" || s.sessions.length > 0) {
        j.info("logout wait: the user logged in again; the home stays mounted");
      } else {
        j.context = `user=${s.user} stick=${s.stick.device}${s.stick.label ? ` "${s.stick.label}"` : ""}`;
        if ((await tryTeardown(ctx, s)) === "done") {
          j.info(
            `logout complete after waiting ${((Date.now() - t0) / 1000).toFixed(1)}s for programs to leave the home`,
          );
        } else if (Date.now() >= deadline) {
          await forceTeardown(ctx, s, `the home was still in use after logout_wait = ${cfg.logoutWait}s`);
          j.info("logout complete (cleaned up after the wait)");
        } else {
          finished = false;
        }
      }
    } finally {
      await lock.release();
    }
    if (finished) return;
    await sleep(500);
  }
}

/** Admin / last resort: unmount a user's stick home now, whatever uses it (`pershome-pam-hook --reset USER`). */
export async function resetUser(ctx: Context, user: string): Promise<void> {
  const { cfg, journal: j } = ctx;
  j.context = `user=${user}`;
  const dir = userDir(cfg.stateDir, user);
  const lock = await takeLock(dir, cfg.lockTimeout);
  try {
    const s = readState(cfg.stateDir, user);
    if (s) {
      await forceTeardown(ctx, s, "reset requested");
    } else {
      j.info("reset: no state; clearing any mounts under the state folder");
      const a = await lookupAccount(user);
      if (a && mountAt(a.home)?.fstype === LAYER_FSTYPE) await lazyUnmount(a.home);
      for (const m of mountsUnder(dir).reverse()) await lazyUnmount(m.mountpoint);
    }
  } finally {
    dropUserDir(ctx, user);
    await lock.release();
  }
}
