/**
 * `pershome init [STICK]`: prepares an already formatted FAT32/exFAT stick — a /pershome
 * folder with the format marker, optionally seeded from /etc/skel through the layer. Refuses,
 * with the reason, a stick that is read-only, full, not FAT/exFAT, or prepared by a newer
 * format; if anything fails half-way, what this run created is taken away again.
 */
import fs from "node:fs";
import path from "node:path";
import { AREA_DIR, FORMAT_VERSION, MARKER_FILE, makeMarker } from "../format/marker.js";
import { EXIT, Output, StickError, bs, errCode, humanBytes } from "./common.js";
import { copyTree, scanTree, stickFailure } from "./copy-tree.js";
import { askForStick } from "./find-sticks.js";
import { mountLayerTemporarily } from "./layer-mount.js";
import type { TempLayer } from "./layer-mount.js";
import { openStick, refuseIfInUse, space } from "./locate.js";
import type { Stick } from "./locate.js";
import { newerMessage, readMarker } from "./marker-state.js";

export interface InitArgs {
  stick?: string;
  skel: boolean;
  skelDir: string;
  force: boolean;
  json: boolean;
}

/** Less free space than this and a home is of no use: refuse as "full". */
export const MIN_FREE = 1024 * 1024;

export interface InitOutcome {
  ok: boolean;
  stick: string;
  home: string;
  device: string | null;
  filesystem: string;
  label: string;
  alreadyPrepared: boolean;
  formatVersion: number;
  seeded: number;
  message: string;
}

function fsyncDir(p: string): void {
  try {
    const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    /* some drivers refuse fsync on a directory: the data fsync below still holds */
  }
}

function label(s: Stick): string {
  // a stick mounted only for this command is named by its device, not the passing mount point
  const where = s.mountedHere && s.device ? s.device : s.root;
  return s.label ? `"${s.label}" (${where})` : where;
}

/** The work, without printing: used by the CLI and the graphical helper. */
export async function initStick(a: InitArgs, progress?: (msg: string) => void): Promise<InitOutcome> {
  const given = a.stick ?? (await askForStick("init"));
  const stick = openStick(given, { force: a.force });
  try {
    const base = {
      stick: stick.root,
      home: stick.home,
      device: stick.device,
      filesystem: stick.fsName,
      label: stick.label,
      formatVersion: FORMAT_VERSION,
    };
    const m = readMarker(stick.home);
    if (m.state === "newer") throw new StickError("newer-format", newerMessage(m.version));
    if (m.state === "garbage") {
      throw new StickError(
        "garbage-marker",
        `The stick ${label(stick)} already has a pershome folder, but its format marker (pershome/.pershome/format) is damaged. Nothing was changed. Run "pershome check --repair ${given}" to fix it.`,
      );
    }
    if (m.state === "home-not-dir") {
      throw new StickError(
        "not-a-stick",
        `The stick ${label(stick)} has a file called "pershome" where the pershome folder goes. Nothing was changed. Rename or move that file (on any computer), then try again.`,
      );
    }
    if (m.state === "area-not-dir") {
      throw new StickError(
        "garbage-marker",
        `The stick's pershome folder looks damaged (.pershome is not a folder). Nothing was changed. Run "pershome check --repair ${given}".`,
      );
    }
    if (m.state === "ok") {
      return {
        ok: true,
        ...base,
        formatVersion: m.version,
        alreadyPrepared: true,
        seeded: 0,
        message:
          `The stick ${label(stick)} is already prepared for pershome (format ${m.version}); nothing was changed.` +
          (a.skel
            ? ' (--skel only fills a new home: copy files into an existing one with "pershome migrate".)'
            : "") +
          ` Next: log in with it on a pershome computer, or see what is on it with "pershome status ${given}".`,
      };
    }
    if (stick.readOnly) {
      throw new StickError(
        "read-only",
        `The stick ${label(stick)} is read-only, so nothing was changed: its write-protect switch may be on, or it is mounted read-only (or failing). Make it writable, then try again.`,
      );
    }
    refuseIfInUse(stick.home);
    let need = MIN_FREE;
    // Starting files only go into a new (or empty) home: never over files already there.
    const seedable = a.skel && (m.state === "no-home" || fs.readdirSync(stick.home).length === 0);
    if (a.skel && !fs.existsSync(a.skelDir))
      throw new StickError("source", `${a.skelDir} does not exist: nothing was changed.`);
    const skel = seedable ? scanTree(bs(path.resolve(a.skelDir))) : null;
    if (skel) need += skel.bytes + skel.files * 4096;
    const { free } = space(stick.root);
    if (free < need) {
      throw new StickError(
        "full",
        `The stick ${label(stick)} is full (${humanBytes(free)} free; a pershome home needs at least ${humanBytes(need)}). Nothing was changed. Make room on it (delete or move files, on any computer), then try again.`,
      );
    }

    // Create what is missing, remembering it so that a failure takes it away again.
    const created: string[] = [];
    const area = path.join(stick.home, AREA_DIR);
    const marker = path.join(area, MARKER_FILE);
    let layer: TempLayer | null = null;
    let seeded = 0;
    try {
      progress?.("creating the pershome folder");
      if (m.state === "no-home") {
        fs.mkdirSync(stick.home, 0o755);
        created.push(stick.home);
      }
      if (m.state === "no-home" || m.state === "no-area") {
        fs.mkdirSync(area, 0o755);
        created.push(area);
      }
      const fd = fs.openSync(marker, "wx", 0o644);
      created.push(marker);
      try {
        fs.writeSync(fd, makeMarker());
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fsyncDir(area);
      fsyncDir(stick.home);
      fsyncDir(stick.root);
      if (skel) {
        progress?.(`copying ${a.skelDir} into the new home`);
        layer = await mountLayerTemporarily(stick.home);
        const r = await copyTree(bs(path.resolve(a.skelDir)), bs(layer.mnt), skel, {
          layerDead: () => layer!.dead(),
        });
        seeded = r.copied;
        await layer.stop();
        layer = null;
      }
    } catch (err) {
      if (layer) await layer.stop();
      // no worse than before: take away what this run made (the user's files are never touched)
      for (const p of created.reverse()) {
        try {
          if (p === stick.home) fs.rmSync(p, { recursive: true, force: true });
          else if (p === area) fs.rmSync(p, { recursive: true, force: true });
          else fs.rmSync(p, { force: true });
        } catch {
          /* the stick may be gone */
        }
      }
      if (err instanceof StickError) throw err;
      const code = errCode(err);
      if (code === "ENOSPC") {
        throw new StickError(
          "full",
          `The stick ${label(stick)} became full while preparing it; what was made was taken away again. Make room on it, then try again.`,
        );
      }
      if (code === "EROFS" || code === "EACCES" || code === "EPERM") {
        throw new StickError(
          "read-only",
          `The stick ${label(stick)} refused to be written (${code}); nothing is left changed. Make it writable (write-protect switch?), then try again.`,
        );
      }
      const s = stickFailure(err, "preparing the stick");
      if (s) {
        throw new StickError(
          "pulled",
          `The stick stopped answering while it was being prepared (${code}) — was it pulled out? Plug it back in and run "pershome init" again; if it had got half-way, "pershome check --repair" tidies it.`,
        );
      }
      throw err;
    }
    const seededText = skel
      ? `, with the usual starting files from ${a.skelDir} (${seeded})`
      : a.skel
        ? ` (its pershome folder already held files, so nothing from ${a.skelDir} was added)`
        : "";
    return {
      ok: true,
      ...base,
      alreadyPrepared: false,
      seeded,
      message:
        `The stick ${label(stick)} is ready for pershome: it now has a "pershome" folder (format ${FORMAT_VERSION})${seededText}. ` +
        `Nothing else on the stick was changed. Next: log in on a pershome computer with the stick plugged in, or copy an existing home onto it with "pershome migrate ~ ${given}".`,
    };
  } finally {
    stick.release();
  }
}

export async function initCommand(a: InitArgs, out: Output): Promise<number> {
  const r = await initStick(a, (msg) => out.say(`… ${msg}`));
  out.say(r.message);
  out.result({ ...r });
  return EXIT.ok;
}
