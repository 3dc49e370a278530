/**
 * `pershome gui` (the "pershome stick helper" desktop entry): a few zenity dialogs for a
 * student — pick the stick, confirm, prepare, see the result — with the same plain messages
 * as `pershome init`.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { EXIT, Output, StickError, humanBytes } from "./common.js";
import { findSticks } from "./find-sticks.js";
import type { StickCandidate } from "./find-sticks.js";
import { initStick } from "./init.js";

export const TITLES = {
  none: "pershome: no stick found",
  pick: "pershome: choose your stick",
  confirm: "pershome: prepare this stick?",
  working: "pershome: preparing the stick",
  done: "pershome: your stick is ready",
  failed: "pershome: the stick was not prepared",
} as const;

/**
 * One zenity dialog. Its exit code is the answer (0: OK, 1: Cancel/closed); anything else means
 * zenity itself failed (no display, a crash): that is an error with zenity's own words, never
 * taken for "cancelled".
 */
function zenity(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("zenity", args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", (e) =>
      reject(
        new StickError(
          "no-stick",
          `The graphical helper needs zenity (${e.message}). Install it ("apt install zenity"), or use "pershome init" in a terminal.`,
        ),
      ),
    );
    child.once("close", (code, signal) => {
      // zenity says "cannot open display" and exits 1, the same code as Cancel
      const noDisplay = /cannot open display/.test(stderr);
      if ((code === 0 || code === 1) && !noDisplay) return resolve({ code, stdout: stdout.trim() });
      if (noDisplay)
        return reject(
          new StickError(
            "io-error",
            `The helper could not open a window: there is no graphical display here (DISPLAY=${process.env.DISPLAY ?? "unset"}). Start it from the desktop menu ("pershome stick helper"), or use "pershome init" in a terminal.`,
          ),
        );
      const why = signal ? `was stopped by ${signal}` : `failed (exit code ${code})`;
      const said = stderr
        .split("\n")
        .filter((l) => l.trim() && !/Gtk-WARNING|Gdk-Message|dbind-WARNING/.test(l))
        .slice(-3)
        .join(" ");
      reject(
        new StickError(
          "io-error",
          `The dialog program (zenity) ${why}${said ? `: ${said}` : ""}. Nothing was changed by this step; try again, or use "pershome init" in a terminal.`,
        ),
      );
    });
  });
}

/** Text for a zenity dialog with Pango markup on. */
function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function kindName(c: StickCandidate): string {
  return c.fstype === "vfat" ? "FAT32" : "exFAT";
}

function nameOf(c: StickCandidate): string {
  return c.label ? `"${c.label}"` : "the stick without a name";
}

async function pick(): Promise<StickCandidate | null> {
  for (;;) {
    const list = findSticks();
    if (list.length === 0) {
      const r = await zenity([
        "--question",
        `--title=${TITLES.none}`,
        "--width=420",
        `--text=${esc("No USB stick was found.\n\nPlug in your stick (FAT32 or exFAT, as sold in shops), wait a moment, then press “Try again”.")}`,
        "--ok-label=Try again",
        "--cancel-label=Close",
      ]);
      if (r.code !== 0) return null;
      continue;
    }
    const rows = list.flatMap((c) => [
      c.device,
      c.label || "(no name)",
      humanBytes(c.size),
      kindName(c),
      c.prepared === true
        ? "already has a pershome home"
        : c.mountpoint
          ? "ready to prepare"
          : "not opened yet",
    ]);
    const r = await zenity([
      "--list",
      `--title=${TITLES.pick}`,
      "--width=640",
      "--height=300",
      "--text=Which stick should hold your home folder?",
      "--column=Device",
      "--column=Name",
      "--column=Size",
      "--column=Type",
      "--column=State",
      "--print-column=1",
      "--ok-label=Next",
      ...rows,
    ]);
    if (r.code !== 0) return null;
    // "Next" with no row chosen (or a stick that went away meanwhile): ask again
    const dev = r.stdout.split("|")[0];
    const chosen = list.find((c) => c.device === dev);
    if (chosen) return chosen;
  }
}

export interface GuiArgs {
  json: boolean;
  skel: boolean;
  skelDir: string;
}

export async function guiCommand(a: GuiArgs, out: Output): Promise<number> {
  const c = await pick();
  if (!c) {
    out.say("Nothing done (no stick chosen).");
    out.result({ ok: false, reason: "cancelled" });
    return EXIT.failed;
  }
  const confirm = await zenity([
    "--question",
    `--title=${TITLES.confirm}`,
    "--width=460",
    `--text=Prepare <b>${esc(nameOf(c))}</b> (${esc(humanBytes(c.size))}, ${kindName(c)}) for pershome?\n\n` +
      esc(
        "This adds one folder, “pershome”, to the stick.\nNothing on the stick is deleted or changed,\nand it keeps working on Windows and macOS.",
      ),
    "--ok-label=Prepare",
    "--cancel-label=Cancel",
  ]);
  if (confirm.code !== 0) {
    out.say("Nothing done (cancelled).");
    out.result({ ok: false, reason: "cancelled" });
    return EXIT.failed;
  }
  let progress: ChildProcess | null = spawn(
    "zenity",
    [
      "--progress",
      "--pulsate",
      "--no-cancel",
      "--auto-close",
      `--title=${TITLES.working}`,
      "--width=420",
      `--text=${esc(`Preparing ${nameOf(c)} …`)}`,
    ],
    { stdio: ["pipe", "ignore", "ignore"] },
  );
  progress.once("error", () => (progress = null));
  const shown = Date.now();
  let ok = false;
  let message: string;
  let reason: string | undefined;
  try {
    const r = await initStick({
      stick: c.mountpoint ?? c.device,
      skel: a.skel,
      skelDir: a.skelDir,
      force: false,
      json: a.json,
    });
    ok = true;
    message = r.message;
  } catch (err) {
    message =
      err instanceof StickError ? err.message : `Something unexpected went wrong: ${(err as Error).message}`;
    reason = err instanceof StickError ? err.reason : "io-error";
  }
  // let the student see that something happened: zenity itself needs 1–1.5 s to show its
  // window on a slow machine, so this leaves about two seconds of it on screen
  const wait = 3500 - (Date.now() - shown);
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  if (progress && progress.exitCode === null && progress.signalCode === null) {
    const p: ChildProcess = progress;
    const gone = new Promise<void>((r) => p.once("exit", () => r()));
    // a progress window that died early must not take the helper with it (EPIPE)
    p.stdin?.on("error", () => undefined);
    p.stdin?.end("100\n");
    const t = setTimeout(() => p.kill(), 3000);
    await gone;
    clearTimeout(t);
  }
  await zenity([
    ok ? "--info" : "--error",
    `--title=${ok ? TITLES.done : TITLES.failed}`,
    "--width=460",
    "--no-markup",
    `--text=${message}`,
  ]);
  out.say(message);
  out.result({ ok, device: c.device, stick: c.mountpoint, message, ...(reason ? { reason } : {}) });
  return ok ? EXIT.ok : EXIT.failed;
}
