/**
 * `pershome migrate SRC STICK`: copies a home (or any tree) onto a prepared stick through the
 * POSIX layer, with progress, resumable after an interruption or a pulled stick, and verified
 * at the end.
 */
import fs from "node:fs";
import path from "node:path";
import { EXIT, Output, StickError, bp, bs, humanBytes, humanDuration, txt } from "./common.js";
import { Interrupted, copyTree, scanTree, stickFailure, verifyTree } from "./copy-tree.js";
import type { CopyResult } from "./copy-tree.js";
import { mountLayerTemporarily } from "./layer-mount.js";
import type { TempLayer } from "./layer-mount.js";
import { openStick, refuseIfInUse, space } from "./locate.js";
import { newerMessage, readMarker } from "./marker-state.js";
import { Progress } from "./progress.js";

export interface MigrateArgs {
  src: string;
  stick: string;
  /** folder inside the stick's home to copy into ("" = the home itself) */
  to: string;
  verify: boolean;
  force: boolean;
  json: boolean;
  /** draw a bar (default: stderr is a terminal) */
  tty?: boolean;
}

export async function migrateCommand(a: MigrateArgs, out: Output): Promise<number> {
  const t0 = Date.now();
  let srcSt: fs.Stats;
  try {
    srcSt = fs.statSync(a.src);
  } catch {
    throw new StickError(
      "source",
      `${a.src} does not exist: give the folder to copy (for example your home, ~).`,
    );
  }
  if (!srcSt.isDirectory())
    throw new StickError(
      "source",
      `${a.src} is not a folder: give the folder to copy (for example your home, ~).`,
    );
  const src = bs(fs.realpathSync(a.src));
  const stick = openStick(a.stick, { force: a.force });
  let layer: TempLayer | null = null;
  let stopRequested = false;
  const onSignal = (): void => {
    stopRequested = true;
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("SIGHUP", onSignal);
  try {
    const m = readMarker(stick.home);
    if (m.state === "no-home") {
      throw new StickError(
        "not-prepared",
        `The stick at ${stick.root} is not prepared for pershome yet. Run "pershome init ${stick.given}" first, then this command again.`,
      );
    }
    if (m.state === "newer") throw new StickError("newer-format", newerMessage(m.version));
    if (m.state === "home-not-dir" || m.state === "area-not-dir") {
      throw new StickError(
        "garbage-marker",
        `The stick's pershome folder looks damaged. Run "pershome check --repair ${stick.given}" first.`,
      );
    }
    if (stick.readOnly) {
      throw new StickError(
        "read-only",
        `The stick at ${stick.root} is read-only (write-protect switch, or mounted read-only): nothing was copied. Make it writable, then try again.`,
      );
    }
    refuseIfInUse(stick.home);
    if (src === bs(stick.root) || src.startsWith(bs(stick.root).replace(/\/$/, "") + "/")) {
      throw new StickError("source", `${a.src} is on the stick itself: give a folder on this computer.`);
    }
    out.say(`Looking at ${a.src} …`);
    const scan = scanTree(src);
    // never copy the stick into itself when the stick is mounted inside the source
    const inside = bs(stick.root).startsWith(src + "/") ? bs(stick.root).slice(src.length + 1) : null;
    if (inside !== null)
      scan.entries = scan.entries.filter((e) => e.rel !== inside && !e.rel.startsWith(inside + "/"));
    if (scan.xattrProblem) out.warn(scan.xattrProblem);

    layer = await mountLayerTemporarily(stick.home);
    const destRoot = bs(a.to ? path.join(layer.mnt, a.to) : layer.mnt);
    if (a.to) fs.mkdirSync(bp(destRoot), { recursive: true });

    // Enough room? Count what is not on the stick yet (a resumed copy needs less).
    let need = 0;
    for (const e of scan.entries) {
      if (e.kind !== "f") continue;
      try {
        const d = fs.lstatSync(bp(path.join(txt(destRoot), txt(e.rel))), { bigint: true });
        if (d.isFile() && d.size === e.st.size && d.mtimeNs === e.st.mtimeNs) continue;
      } catch {
        /* not there yet */
      }
      need += Number(e.st.size);
    }
    const { free } = space(stick.root);
    const overhead = scan.files * 4096;
    if (need + overhead > free) {
      throw new StickError(
        "full",
        `The stick has ${humanBytes(free)} free, but copying ${a.src} needs about ${humanBytes(need + overhead)} more. Nothing more was copied. Make room on the stick (or use a bigger one), or copy a smaller folder.`,
      );
    }

    out.say(
      `Copying ${scan.files} files and folders (${humanBytes(scan.bytes)}) to the stick at ${stick.root} …`,
    );
    const progress = new Progress(
      "copying",
      scan.bytes,
      scan.files,
      a.tty === undefined ? {} : { tty: a.tty },
    );
    let result: CopyResult;
    try {
      result = await copyTree(src, destRoot, scan, {
        progress,
        shouldStop: () => stopRequested,
        layerDead: () => layer!.dead(),
        note: (msg) => out.warn(msg),
      });
      progress.done();
    } catch (err) {
      progress.done();
      if (err instanceof Interrupted) {
        await layer.stop();
        layer = null;
        const msg = `Stopped. What was copied so far is safely on the stick. Run the same command again to continue: files already copied are skipped.`;
        if (a.json) out.result({ ok: false, reason: "interrupted", message: msg });
        else out.warn(msg);
        return EXIT.interrupted;
      }
      throw err;
    }
    if (layer.dead()) throw stickFailure(Object.assign(new Error(), { code: "ENOTCONN" }), "copying")!;

    let mismatches: { path: string; what: string }[] = [];
    if (a.verify) {
      out.say("Verifying the copy (reading everything back from the stick) …");
      const vp = new Progress("verifying", scan.bytes, scan.files, a.tty === undefined ? {} : { tty: a.tty });
      try {
        mismatches = verifyTree(src, destRoot, scan, new Set(result.skipped.map((s) => s.path)), vp);
      } finally {
        vp.done();
      }
    }
    await layer.stop();
    layer = null;

    const secs = (Date.now() - t0) / 1000;
    const ok = mismatches.length === 0 && scan.unreadable.length === 0;
    for (const s of result.skipped) out.say(`  not copied: ${s.path || "/"}: ${s.why}`);
    for (const u of scan.unreadable) out.say(`  could not read: ${txt(u.rel) || "/"} (${u.why})`);
    for (const mm of mismatches) out.say(`  differs on the stick: ${mm.path}: ${mm.what}`);
    if (ok) {
      out.say(
        `Done: ${result.copied} copied, ${result.skippedSame} already on the stick${result.skipped.length ? `, ${result.skipped.length} not copied (see above)` : ""}, in ${humanDuration(secs)}.` +
          (a.verify ? " The copy was verified." : ""),
      );
      out.say(
        `Next: take the stick to a pershome computer and log in, or look at it with "pershome status ${stick.given}".`,
      );
    } else {
      out.say(
        mismatches.length
          ? `The copy does not match in ${mismatches.length} place(s) (listed above). Run the same command again to copy them once more; if it keeps happening, the stick may be failing.`
          : `Some files could not be read here (listed above); everything else was copied${a.verify ? " and verified" : ""}.`,
      );
    }
    out.result({
      ok,
      stick: stick.root,
      source: a.src,
      copied: result.copied,
      alreadyThere: result.skippedSame,
      notCopied: result.skipped,
      unreadable: scan.unreadable.map((u) => ({ path: txt(u.rel), why: u.why })),
      verified: a.verify,
      mismatches,
      bytes: scan.bytes,
      files: scan.files,
      seconds: secs,
    });
    return ok ? EXIT.ok : EXIT.failed;
  } catch (err) {
    if (layer) {
      const dead = layer.dead();
      await layer.stop();
      if (dead && !(err instanceof StickError && err.reason === "pulled")) {
        throw new StickError(
          "pulled",
          `The stick stopped answering while copying — was it pulled out? What was copied so far is kept. Plug it back in and run the same command again: it continues where it stopped.`,
        );
      }
    }
    if (err instanceof StickError) throw err;
    const stickErr = stickFailure(err, "copying");
    if (stickErr) throw stickErr;
    throw err;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.off("SIGHUP", onSignal);
    stick.release();
  }
}
