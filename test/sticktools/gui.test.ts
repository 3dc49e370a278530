// The graphical stick helper (`pershome gui`), run for real: zenity on an Xvfb display, driven
// with xdotool like a student would (pick the stick, confirm, wait, read the result), with a
// screenshot of each dialog kept in reports/screenshots/. Then the same with a read-only stick,
// which must end in the error dialog with the CLI's message.

import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { killSync, track } from "../support/cleanup.js";
import { REPO } from "../support/mount.js";
import { run, sleep, waitFor } from "../support/run.js";
import { CLI, exfatHostStick, json, pershome, scratch } from "./helpers.js";

const dir = scratch("gui");
const SHOTS = join(REPO, "reports/screenshots");
let xvfb: ChildProcess | null = null;
const env = { DISPLAY: "", NO_AT_BRIDGE: "1", GTK_THEME: "Adwaita" };

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  // -noreset: an X server resets when its last client leaves, and a dialog connecting just then
  // gets "cannot open display" (this test's old flake). -displayfd: Xvfb picks a free display
  // itself and writes its number to fd 3, so a server of an earlier run cannot be met.
  const args = ["-noreset", "-displayfd", "3", "-screen", "0", "1024x768x24", "-nolisten", "tcp"];
  xvfb = spawn("Xvfb", args, {
    stdio: ["ignore", "ignore", "ignore", "pipe"],
  });
  const untrack = track({ what: "Xvfb", undo: () => killSync(xvfb?.pid, "SIGTERM") });
  afterAll(() => {
    killSync(xvfb?.pid, "SIGTERM");
    untrack();
  });
  const fd3 = xvfb.stdio[3] as NodeJS.ReadableStream;
  let said = "";
  fd3.setEncoding("utf8");
  fd3.on("data", (d: string) => (said += d));
  expect(await waitFor(() => said.includes("\n"), 20_000, 100), "Xvfb did not start").toBe(true);
  env.DISPLAY = `:${said.trim()}`;
});

/** Waits for a window with exactly this title; returns its id. */
async function windowNamed(title: string, timeoutMs = 60_000): Promise<string> {
  const id = await waitFor(
    async () => {
      const r = await run(
        "xdotool",
        ["search", "--onlyvisible", "--name", `^${title.replace(/[?.]/g, "\\$&")}$`],
        { env },
      );
      return r.code === 0 ? r.stdout.trim().split("\n")[0] : undefined;
    },
    timeoutMs,
    100,
  );
  if (!id) {
    const seen = await run("xdotool", ["search", "--name", "."], { env });
    const names = await Promise.all(
      seen.stdout
        .trim()
        .split("\n")
        .filter(Boolean)
        .map(async (w) => (await run("xdotool", ["getwindowname", w], { env })).stdout.trim()),
    );
    throw new Error(
      `no window "${title}" appeared; windows now: ${JSON.stringify(names)}; the helper ${lastGui?.exited() ? `has exited (${lastGui.status()})` : "still runs"} and said: ${lastGui?.stdout() ?? ""} ${lastGui?.stderr() ?? ""}`,
    );
  }
  titles.set(id, title);
  await sleep(300); // let GTK draw it
  return id;
}

/**
 * Starts watching for a window at once, in one waiting xdotool rather than polls from here: for
 * a dialog that may be on screen only briefly (the progress window, on a loaded machine).
 */
function watchFor(title: string, timeoutMs: number): Promise<string | undefined> {
  const child = spawn(
    "xdotool",
    ["search", "--sync", "--onlyvisible", "--name", `^${title.replace(/[?.]/g, "\\$&")}$`],
    { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "ignore"] },
  );
  const untrack = track({ what: "xdotool", undo: () => killSync(child.pid) });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  const t = setTimeout(() => child.kill(), timeoutMs);
  return new Promise((res) =>
    child.once("close", () => {
      clearTimeout(t);
      untrack();
      const id = out.trim().split("\n")[0];
      if (id) titles.set(id, title);
      res(id || undefined);
    }),
  );
}

/** A screenshot of one dialog window (kept), once it is painted (not a blank rectangle). */
async function shot(win: string, name: string): Promise<string> {
  const file = join(SHOTS, name);
  let colours = 0;
  const deadline = Date.now() + 20_000;
  while (colours < 8 && Date.now() < deadline) {
    const r = await run("import", ["-window", win, file], { env });
    expect(r.code, r.stderr).toBe(0);
    colours = Number((await run("convert", [file, "-format", "%k", "info:"])).stdout.trim());
    if (colours < 8) await sleep(200);
  }
  expect(colours, `${name}: the window stayed blank`).toBeGreaterThanOrEqual(8);
  return file;
}

/** The title each window was found by: X reuses a closed client's window ids for the next one. */
const titles = new Map<string, string>();

/** Is this dialog (this id *with its title*) still there? */
const exists = async (win: string): Promise<boolean> => {
  const r = await run("xdotool", ["getwindowname", win], { env });
  return r.code === 0 && r.stdout.trim() === titles.get(win);
};

/**
 * Sends input to a dialog and waits until it closes. Keys go to whatever has the focus, so
 * they are only sent while this very window exists and has it; a dialog mapped a moment ago
 * that missed them gets them again, one that is gone never gets a second helping (which would
 * land in the next dialog).
 */
async function answer(win: string, send: () => Promise<void>): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    if (!(await exists(win))) return;
    await run("xdotool", ["windowfocus", "--sync", win], { env });
    const focus = (await run("xdotool", ["getwindowfocus"], { env })).stdout.trim();
    if (focus !== win || !(await exists(win))) {
      await sleep(300);
      continue;
    }
    await send();
    // a loaded machine may take a while to act on the keys: resend only when long overdue
    if (await waitFor(async () => !(await exists(win)), 25_000, 100)) return;
  }
  throw new Error(`window ${win} did not react to the keys`);
}

async function keys(win: string, ...k: string[]): Promise<void> {
  await answer(win, async () => {
    const r = await run("xdotool", ["key", "--delay", "80", ...k], { env });
    expect(r.code, r.stderr).toBe(0);
  });
}

/** Picks the (only) stick in the list: the first row, then Next. */
async function pickStick(win: string): Promise<void> {
  await answer(win, async () => {
    expect((await run("xdotool", ["key", "--delay", "150", "Home", "Return"], { env })).code).toBe(0);
  });
}

/**
 * Chooses our stick in the helper's list and returns the question window. The list comes back
 * when "Next" was pressed with no row chosen (typing into a list GTK has not focused yet):
 * then it is chosen again.
 */
async function choose(device: string, shotName?: string): Promise<string> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const pick = await windowNamed("pershome: choose your stick");
    if (attempt === 0 && shotName) await shot(pick, shotName);
    await pickStick(pick);
    const next = await waitFor(
      async () => {
        for (const title of ["pershome: prepare this stick?", "pershome: choose your stick"]) {
          const r = await run(
            "xdotool",
            ["search", "--onlyvisible", "--name", `^${title.replace(/[?.]/g, "\\$&")}$`],
            { env },
          );
          if (r.code === 0) {
            const win = r.stdout.trim().split("\n")[0]!;
            titles.set(win, title);
            return { title, win };
          }
        }
        return undefined;
      },
      15_000,
      100,
    );
    if (next?.title === "pershome: prepare this stick?") {
      await sleep(300);
      return next.win;
    }
  }
  throw new Error(`the stick ${device} could not be chosen; the helper said: ${lastGui?.stderr() ?? ""}`);
}

let lastGui: { stderr(): string; stdout(): string; exited(): boolean; status(): string } | null = null;

function startGui(device: string): {
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
} {
  const child = spawn(process.execPath, [CLI, "gui", "--json"], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env, PERSHOME_STICKS: device },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const untrack = track({ what: "pershome gui", undo: () => killSync(child.pid) });
  let exited = false;
  let status = "";
  child.once("close", (code, signal) => {
    exited = true;
    status = signal ? `killed by ${signal}` : `exit code ${code}`;
  });
  lastGui = { stderr: () => stderr, stdout: () => stdout, exited: () => exited, status: () => status };
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((res) =>
    child.once("exit", (code) => {
      untrack();
      res({ code, stdout, stderr });
    }),
  );
  return { done };
}

/** Our stick is among those the helper lists (the same list `pershome sticks` gives). */
async function rowOf(loop: string): Promise<number> {
  const list = json(await pershome(["sticks", "--json"])).sticks as { device: string }[];
  const i = list.findIndex((c) => c.device === loop);
  expect(i, JSON.stringify(list)).toBeGreaterThanOrEqual(0);
  return i;
}

describe("the graphical stick helper under Xvfb", () => {
  it(
    "pick, confirm, prepare, result: the stick is prepared and every dialog is on a screenshot",
    { timeout: 180_000 },
    async () => {
      const s = await exfatHostStick(dir, "gui", 32, "GUISTICK");
      await rowOf(s.loop);
      const gui = startGui(s.loop);

      const confirm = await choose(s.loop, "gui-1-choose-stick.png");
      await shot(confirm, "gui-2-confirm.png");
      const progress = watchFor("pershome: preparing the stick", 60_000);
      await keys(confirm, "Return");

      // the progress window may be gone again by the time it is painted on a loaded machine:
      // that it appeared is the check; its screenshot is kept when it is still there
      const working = await progress;
      expect(working, `no progress window; the helper said: ${lastGui?.stderr() ?? ""}`).toBeDefined();
      if (await exists(working!)) await shot(working!, "gui-3-preparing.png").catch(() => undefined);

      const done = await windowNamed("pershome: your stick is ready");
      await shot(done, "gui-4-ready.png");
      await keys(done, "Return");

      const r = await gui.done;
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(json({ stdout: r.stdout, stderr: r.stderr, code: 0, command: "gui" })).toMatchObject({
        ok: true,
        device: s.loop,
        stick: s.root,
      });
      expect(JSON.parse(readFileSync(join(s.home, ".pershome/format"), "utf8"))).toMatchObject({
        format: "pershome",
        version: 1,
      });
      await s.detach();
    },
  );

  it(
    "a read-only stick ends in the error dialog with the same message as the CLI, and nothing is written",
    { timeout: 180_000 },
    async () => {
      const s = await exfatHostStick(dir, "guiro", 32, "ROSTICK");
      await s.detach();
      await s.attach({ readOnly: true });
      await rowOf(s.loop);
      const gui = startGui(s.loop);
      const confirm = await choose(s.loop, "gui-ro-1-choose-stick.png");
      await shot(confirm, "gui-ro-2-confirm.png");
      await keys(confirm, "Return");
      const err = await windowNamed("pershome: the stick was not prepared");
      await shot(err, "gui-5-error-read-only.png");
      await keys(err, "Return");
      const r = await gui.done;
      expect(r.code).toBe(1);
      const o = JSON.parse(r.stdout) as { ok: boolean; message: string };
      expect(o.ok).toBe(false);
      const cli = json(await pershome(["init", s.root, "--json"]));
      expect(o.message).toBe(cli.message);
      expect(o.message).toMatch(/read-only/);
      expect(existsSync(s.home)).toBe(false);
      await s.detach();
    },
  );

  it("without a display: a plain error, not taken for a cancel", async () => {
    const r = await pershome(["gui", "--json"], { env: { DISPLAY: ":9999" } });
    expect(r.code, r.stderr).toBe(1);
    const o = JSON.parse(r.stdout) as { ok: boolean; reason: string; message: string };
    expect(o).toMatchObject({ ok: false, reason: "io-error" });
    expect(o.message).toMatch(/no graphical display here \(DISPLAY=:9999\).*pershome init/);
  });

  it("cancelling at the question changes nothing", { timeout: 120_000 }, async () => {
    const s = await exfatHostStick(dir, "guicancel", 32, "CANCEL");
    await rowOf(s.loop);
    const gui = startGui(s.loop);
    const confirm = await choose(s.loop, "gui-cancel-1-choose-stick.png");
    await shot(confirm, "gui-cancel-2-confirm.png");
    await keys(confirm, "Escape");
    const r = await gui.done;
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, reason: "cancelled" });
    expect(existsSync(s.home)).toBe(false);
    await s.detach();
  });
});
