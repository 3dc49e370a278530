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
const DISPLAY = `:${90 + (process.pid % 9)}`;
let xvfb: ChildProcess | null = null;
const env = { DISPLAY, NO_AT_BRIDGE: "1", GTK_THEME: "Adwaita" };

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  xvfb = spawn("Xvfb", [DISPLAY, "-screen", "0", "1024x768x24", "-nolisten", "tcp"], { stdio: "ignore" });
  const untrack = track({ what: "Xvfb", undo: () => killSync(xvfb?.pid, "SIGTERM") });
  afterAll(() => {
    killSync(xvfb?.pid, "SIGTERM");
    untrack();
  });
  const sock = `/tmp/.X11-unix/X${DISPLAY.slice(1)}`;
  expect(await waitFor(() => existsSync(sock), 20_000, 100), "Xvfb did not start").toBe(true);
});

/** Waits for a window with exactly this title; returns its id. */
async function windowNamed(title: string, timeoutMs = 60_000): Promise<string> {
  const id = await waitFor(
    async () => {
      const r = await run("xdotool", ["search", "--name", `^${title.replace(/[?.]/g, "\\$&")}$`], { env });
      return r.code === 0 ? r.stdout.trim().split("\n")[0] : undefined;
    },
    timeoutMs,
    200,
  );
  if (!id) throw new Error(`no window "${title}" appeared`);
  await sleep(700); // let GTK draw it
  return id;
}

async function shot(name: string): Promise<string> {
  const file = join(SHOTS, name);
  const r = await run("import", ["-window", "root", file], { env });
  expect(r.code, r.stderr).toBe(0);
  // a dialog was drawn: more than a handful of colours (text, buttons), not a blank screen
  const colours = await run("convert", [file, "-format", "%k", "info:"]);
  expect(Number(colours.stdout.trim()), colours.stderr).toBeGreaterThan(20);
  return file;
}

async function keys(win: string, ...k: string[]): Promise<void> {
  expect((await run("xdotool", ["windowfocus", "--sync", win], { env })).code).toBe(0);
  const r = await run("xdotool", ["key", "--delay", "80", ...k], { env });
  expect(r.code, r.stderr).toBe(0);
}

function startGui(): { done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, [CLI, "gui", "--json"], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const untrack = track({ what: "pershome gui", undo: () => killSync(child.pid) });
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((res) =>
    child.once("exit", (code) => {
      untrack();
      res({ code, stdout, stderr });
    }),
  );
  return { done };
}

/** The row of our stick in the helper's list (the order `pershome sticks` gives). */
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
      const row = await rowOf(s.loop);
      const gui = startGui();

      const pick = await windowNamed("pershome: choose your stick");
      await shot("gui-1-choose-stick.png");
      await keys(pick, "Home", ...Array<string>(row).fill("Down"), "Return");

      const confirm = await windowNamed("pershome: prepare this stick?");
      await shot("gui-2-confirm.png");
      await keys(confirm, "Return");

      await windowNamed("pershome: preparing the stick", 20_000);
      await shot("gui-3-preparing.png");

      const done = await windowNamed("pershome: your stick is ready");
      await shot("gui-4-ready.png");
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
      const row = await rowOf(s.loop);
      const gui = startGui();
      await keys(
        await windowNamed("pershome: choose your stick"),
        "Home",
        ...Array<string>(row).fill("Down"),
        "Return",
      );
      await keys(await windowNamed("pershome: prepare this stick?"), "Return");
      const err = await windowNamed("pershome: the stick was not prepared");
      await shot("gui-5-error-read-only.png");
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

  it("cancelling at the question changes nothing", { timeout: 120_000 }, async () => {
    const s = await exfatHostStick(dir, "guicancel", 32, "CANCEL");
    const row = await rowOf(s.loop);
    const gui = startGui();
    await keys(
      await windowNamed("pershome: choose your stick"),
      "Home",
      ...Array<string>(row).fill("Down"),
      "Return",
    );
    await keys(await windowNamed("pershome: prepare this stick?"), "Escape");
    const r = await gui.done;
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, reason: "cancelled" });
    expect(existsSync(s.home)).toBe(false);
    await s.detach();
  });
});
