/**
 * The POSIX layer's daemon for a login: `pershome mount LOWER HOME --foreground --owner U:G
 * --allow-other`, started so that it outlives the hook and holds nothing of it (no inherited
 * stdout, which would keep pam_exec waiting, and its own session). Where systemd is PID 1 it is
 * the templated unit pershome@USER.service (journal, outside the login's cgroup); elsewhere the
 * hook starts it itself. Readiness is the mount appearing on the home.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import { fileURLToPath } from "node:url";
import { pidFile } from "../cli/runtime.js";
import { LAYER_FSTYPE, mountAt } from "../system/mountinfo.js";
import { type ProcessId, isRunning, processId, signal, waitGone } from "./processes.js";
import { runCommand, systemEnv } from "./run.js";
import type { LayerInfo } from "./state.js";
import { layerUnit } from "./systemd.js";

export const CLI_PATH = fileURLToPath(new URL("../cli/main.js", import.meta.url));

export interface LayerRequest {
  user: string;
  uid: number;
  gid: number;
  lower: string;
  home: string;
  /** the user's state directory (layer.log, layer.env) */
  dir: string;
  systemd: boolean;
  timeoutSec: number;
}

export type LayerStart =
  | { ok: true; layer: LayerInfo; ms: number }
  /** timedOut: it was still starting when mount_timeout ran out (a slow machine or stick) */
  | { ok: false; why: string; layer: LayerInfo | null; timedOut?: boolean };

function tail(file: string, lines = 4): string {
  try {
    return fs.readFileSync(file, "utf8").trim().split("\n").slice(-lines).join(" / ");
  } catch {
    return "";
  }
}

/** The layer's mount on the home, if it is there. */
export function layerMounted(home: string): boolean {
  return mountAt(home)?.fstype === LAYER_FSTYPE;
}

async function waitMounted(
  home: string,
  before: Set<number>,
  deadline: number,
  alive: () => boolean | Promise<boolean>,
  aliveEveryMs: number,
): Promise<"ready" | "died" | "timeout"> {
  let lastAliveCheck = 0;
  for (;;) {
    const m = mountAt(home);
    if (m && m.fstype === LAYER_FSTYPE && !before.has(m.id)) return "ready";
    if (Date.now() - lastAliveCheck >= aliveEveryMs) {
      lastAliveCheck = Date.now();
      if (!(await alive())) {
        // It may have mounted just before it was seen ending.
        const again = mountAt(home);
        return again && again.fstype === LAYER_FSTYPE && !before.has(again.id) ? "ready" : "died";
      }
    }
    if (Date.now() >= deadline) return "timeout";
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A value for a systemd EnvironmentFile: double-quoted, with C escapes. */
function envValue(v: string): string {
  return `"${v.replace(/[\\"$`]/g, (c) => "\\" + c)}"`;
}

/** The unit file hard-codes /run/pershome/%I (EnvironmentFile, RequiresMountsFor). */
export const UNIT_STATE_DIR = "/run/pershome";

export async function startLayer(q: LayerRequest): Promise<LayerStart> {
  const t0 = Date.now();
  const deadline = t0 + q.timeoutSec * 1000;
  const before = new Set([mountAt(q.home)?.id ?? -1]);
  const owner = `${q.uid}:${q.gid}`;
  if (q.systemd) {
    const unit = layerUnit(q.user);
    const env = [
      `PERSHOME_NODE=${envValue(process.execPath)}`,
      `PERSHOME_CLI=${envValue(CLI_PATH)}`,
      `PERSHOME_LOWER=${envValue(q.lower)}`,
      `PERSHOME_HOME=${envValue(q.home)}`,
      `PERSHOME_OWNER=${envValue(owner)}`,
    ];
    fs.writeFileSync(`${q.dir}/layer.env`, env.join("\n") + "\n", { mode: 0o600 });
    await runCommand("systemctl", ["reset-failed", unit], { timeoutSec: 10 });
    const r = await runCommand("systemctl", ["start", unit], { timeoutSec: q.timeoutSec });
    const layer: LayerInfo = { kind: "systemd", process: null, unit };
    if (r.exitCode !== 0) return { ok: false, why: r.summary, layer };
    const active = async (): Promise<boolean> => {
      const state = (await runCommand("systemctl", ["is-active", unit], { timeoutSec: 5 })).stdout.trim();
      return state === "active" || state === "activating";
    };
    const outcome = await waitMounted(q.home, before, deadline, active, 500);
    const main = Number(
      (
        await runCommand("systemctl", ["show", "-p", "MainPID", "--value", unit], { timeoutSec: 5 })
      ).stdout.trim(),
    );
    layer.process = main > 1 ? processId(main) : null;
    if (outcome === "ready") return { ok: true, layer, ms: Date.now() - t0 };
    return {
      ok: false,
      why: `${unit} ${outcome === "died" ? "stopped" : "did not mount in time"} (see: journalctl -u ${unit})`,
      layer,
      timedOut: outcome !== "died",
    };
  }

  const logPath = `${q.dir}/layer.log`;
  const out = fs.openSync(logPath, "a", 0o600);
  let child;
  try {
    child = spawn(
      process.execPath,
      [CLI_PATH, "mount", q.lower, q.home, "--foreground", "--owner", owner, "--allow-other"],
      {
        detached: true, // its own session: not killed with the login's process group, no terminal
        stdio: ["ignore", out, out], // never the hook's stdout: pam_exec would wait for it to close
        env: systemEnv(),
        cwd: "/",
      },
    );
  } finally {
    fs.closeSync(out);
  }
  let exited = false;
  child.on("exit", () => (exited = true));
  child.on("error", () => (exited = true));
  child.unref();
  const pid = child.pid ?? 0;
  const id: ProcessId | null = pid > 0 ? processId(pid) : null;
  const layer: LayerInfo = { kind: "direct", process: id, unit: "" };
  const outcome = await waitMounted(q.home, before, deadline, () => !exited && isRunning(id), 0);
  if (outcome === "ready") return { ok: true, layer, ms: Date.now() - t0 };
  const said = tail(logPath);
  return {
    ok: false,
    why:
      outcome === "died"
        ? `the layer stopped: ${said || "no output"}`
        : `the layer did not mount within ${q.timeoutSec}s: ${said}`,
    layer,
    timedOut: outcome !== "died",
  };
}

/** Whether the layer's daemon still runs. */
export async function layerRunning(layer: LayerInfo): Promise<boolean> {
  if (layer.process && isRunning(layer.process)) return true;
  if (layer.kind === "systemd") {
    const r = await runCommand("systemctl", ["is-active", layer.unit], { timeoutSec: 5 });
    return r.stdout.trim() === "active" || r.stdout.trim() === "deactivating";
  }
  return false;
}

/** Waits until the daemon has written everything and exited after its mount went away. */
export async function waitLayerExit(layer: LayerInfo, timeoutSec: number): Promise<boolean> {
  const deadline = Date.now() + timeoutSec * 1000;
  for (;;) {
    if (!(await layerRunning(layer))) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Ends the daemon whatever it is doing: SIGTERM (it detaches its mount and writes everything
 * out), then SIGKILL after `graceSec`. Returns what was done, for the log.
 */
export async function stopLayer(layer: LayerInfo, home: string, graceSec: number): Promise<string> {
  const done: string[] = [];
  if (layer.kind === "systemd") {
    const r = await runCommand("systemctl", ["stop", layer.unit], { timeoutSec: graceSec + 10 });
    done.push(`systemctl stop ${layer.unit}: exit ${r.exitCode}`);
    await runCommand("systemctl", ["reset-failed", layer.unit], { timeoutSec: 10 });
  }
  if (layer.process && isRunning(layer.process)) {
    signal(layer.process, "SIGTERM");
    if (await waitGone([layer.process], graceSec * 1000))
      done.push(`daemon ${layer.process.pid} ended on SIGTERM`);
    else {
      signal(layer.process, "SIGKILL");
      await waitGone([layer.process], 5000);
      done.push(
        `daemon ${layer.process.pid} killed (SIGKILL) after ${graceSec}s: records not yet written may be lost`,
      );
      try {
        fs.rmSync(pidFile(home), { force: true });
      } catch {
        /* the CLI's pid file; best effort */
      }
    }
  }
  return done.join("; ") || "the daemon was already gone";
}
