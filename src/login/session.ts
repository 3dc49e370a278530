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
import { type LoginConfig, expandPath } from "./config.js";
import { type Helper, sleep, startHelper } from "./helpers.js";
import type { Journal } from "./journal.js";
import { startLayer, stopLayer, waitLayerExit } from "./layer-daemon.js";
import { type HeldLock, takeLock } from "./lock.js";
import { LAYER_FSTYPE, mountAt, mountsUnder } from "../system/mountinfo.js";
import { type StickName, clearMessage, leaveMessage, messages, tellPam } from "./notify.js";
import { type OptInDecision, decideOptIn } from "./optin.js";
import { type ProcessId, describeUses, processId, processesUsing, signal, waitGone } from "./processes.js";
import { chooseStick, findCandidates, preferenceOrder } from "./stick-discovery.js";
import { hasPershomeFolder, lazyUnmount, mountStick, syncStick, unmountPath } from "./stick-mount.js";
import { logoutUnit, watcherUnit } from "./systemd.js";
import {
  type SessionEntry,
  type StickInfo,
  type UserState,
  matchSession,
  readState,
  removeState,
  stateFile,
  userDir,
  writeState,
} from "./state.js";
import { checkHealth, stopHelper } from "./watch.js";

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

function entryFor(req: PamRequest): SessionEntry {
  return {
    app: req.app,
    service: req.service,
    tty: req.tty,
    rhost: req.rhost,
    opened: new Date().toISOString(),
  };
}

function describeSession(req: PamRequest): string {
  return [
    req.service || "?",
    req.tty,
    req.rhost ? `from ${req.rhost}` : "",
    req.app ? `pid ${req.app.pid}` : "",
  ]
    .filter(Boolean)
    .join(" ");
}

function say(
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
function dropUserDir(ctx: Context, user: string): void {
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
function forwardLayerLog(ctx: Context, user: string): void {
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

// ---------------------------------------------------------------- teardown

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

function rmdirQuietly(p: string): void {
  try {
    fs.rmdirSync(p);
  } catch {
    /* still a mount point, or already gone */
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
async function tryTeardown(ctx: Context, s: UserState): Promise<"done" | "busy"> {
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
async function forceTeardown(ctx: Context, s: UserState, why: string): Promise<void> {
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

// ---------------------------------------------------------------- open

async function findStickHome(
  ctx: Context,
  a: Account,
  dir: string,
): Promise<
  | { ok: true; stick: StickInfo; chosen: StickName; ignored: StickName[]; rule: "only" | "label" | "first" }
  | { ok: false; message: string; log: string }
> {
  const { cfg, journal: j } = ctx;
  if (cfg.stickPath) {
    const root = expandPath(cfg.stickPath, a.name, a.uid);
    if (!fs.existsSync(root))
      return { ok: false, message: messages.noStick(), log: `fixed stick path ${root} does not exist` };
    const roots = hasPershomeFolder(root)
      ? [root]
      : fs
          .readdirSync(root)
          .map((n) => path.join(root, n))
          .filter((p) => hasPershomeFolder(p));
    const found = roots.map((r) => ({ device: r, label: path.basename(r) }));
    const choice = chooseStick(found, a.name);
    if (!choice)
      return {
        ok: false,
        message: messages.noFolder([{ label: path.basename(root), device: root }]),
        log: `no pershome folder in ${root} or one level below`,
      };
    const r = choice.chosen.device;
    return {
      ok: true,
      stick: {
        kind: "fixed",
        device: r,
        label: choice.chosen.label,
        fstype: "",
        root: r,
        driver: "fixed path (stick_path)",
      },
      chosen: choice.chosen,
      ignored: choice.ignored,
      rule: choice.rule,
    };
  }

  const { candidates, skipped, problems } = await findCandidates(cfg);
  for (const p of problems) j.warn(`stick discovery: ${p}`);
  for (const s of skipped) j.info(`stick discovery: skipped ${s.device}: ${s.why}`);
  j.info(
    `stick discovery: ${candidates.length} candidate(s)` +
      (candidates.length
        ? `: ${candidates.map((c) => `${c.device} ${c.fstype} "${c.label}"`).join(", ")}`
        : "") +
      (cfg.stickDevices.length
        ? ` (stick_devices = ${cfg.stickDevices.join(" ")})`
        : cfg.removableOnly
          ? " (removable devices only)"
          : ""),
  );
  if (candidates.length === 0)
    return { ok: false, message: messages.noStick(), log: "no FAT32/exFAT stick found" };

  // Try the sticks in the order the rule prefers them: the first with a pershome folder stays
  // mounted at <dir>/stick; every other one is only looked into (at <dir>/probe) so the user can
  // be told it was not used.
  const stickDir = `${dir}/stick`;
  const probeDir = `${dir}/probe`;
  let chosen: StickInfo | null = null;
  const ignored: StickName[] = [];
  const withoutFolder: StickName[] = [];
  const failed: { name: StickName; why: string }[] = [];
  for (const c of preferenceOrder(candidates, a.name)) {
    const mp: string = chosen ? probeDir : stickDir;
    const r = await mountStick(c, mp, a, cfg);
    if (!r.ok) {
      j.warn(`could not mount ${c.device}: ${r.result.summary}`);
      failed.push({
        name: c,
        why: r.result.timedOut ? "it did not answer" : "its filesystem could not be read",
      });
      rmdirQuietly(mp);
      continue;
    }
    j.info(
      `mounted ${c.device} (${c.fstype} "${c.label}") on ${mp} with ${r.mount.driver}: ${r.mount.options}`,
    );
    const has = hasPershomeFolder(mp);
    if (has && !chosen) {
      chosen = {
        kind: "device",
        device: c.device,
        label: c.label,
        fstype: c.fstype,
        root: mp,
        driver: r.mount.driver,
      };
      continue;
    }
    if (has) {
      j.info(
        `${c.device} also has a pershome folder; not used (the rule prefers ${chosen!.device}); unmounting it`,
      );
      ignored.push(c);
    } else {
      j.info(`${c.device} has no pershome folder; unmounting it`);
      withoutFolder.push(c);
    }
    const u = await unmountPath(mp);
    if (u.outcome !== "unmounted") await lazyUnmount(mp);
    rmdirQuietly(mp);
  }
  if (!chosen) {
    if (withoutFolder.length > 0) {
      return {
        ok: false,
        message: messages.noFolder(withoutFolder),
        log: `no pershome folder on ${withoutFolder.map((s) => s.device).join(", ")}`,
      };
    }
    const f = failed[0]!;
    return { ok: false, message: messages.stickFailed(f.name, f.why), log: "no stick could be mounted" };
  }
  const rule =
    ignored.length === 0 ? "only" : chosen.label.toLowerCase() === a.name.toLowerCase() ? "label" : "first";
  return { ok: true, stick: chosen, chosen, ignored, rule };
}

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
    j.error(`the layer did not start: ${started.why}; normal home`);
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
