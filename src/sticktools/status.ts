/**
 * `pershome status [STICK]`: what is on a stick — format, files, space, last use, and whether
 * it was cleanly unmounted. Clean unmounts are read from `.pershome/state` (the layer's log of
 * mounts and clean unmounts, src/format/state.ts); without it (a stick last used by an older
 * pershome), the tell-tale signs an interrupted mount leaves in the metadata logs are looked for.
 */
import fs from "node:fs";
import os from "node:os";
import { AREA_DIR } from "../format/marker.js";
import { STATE_FILE, STATE_MAX_BYTES, type StateEvent, parseStateLog } from "../format/state.js";
import { EXIT, Output, humanBytes } from "./common.js";
import { checkHome, problems } from "./check.js";
import { askForStick } from "./find-sticks.js";
import { layerMountsOf, openStick, space } from "./locate.js";
import { newerMessage, readMarker } from "./marker-state.js";
import { StickError } from "./common.js";

/** Reads `.pershome/state` (src/format/state.ts); null when there is none. */
export function readStateLog(home: string): StateEvent[] | null {
  try {
    const b = fs.readFileSync(`${home}/${AREA_DIR}/${STATE_FILE}`);
    return parseStateLog(b.subarray(Math.max(0, b.length - STATE_MAX_BYTES)).toString("utf8"));
  } catch {
    return null;
  }
}

export interface StatusArgs {
  stick?: string;
  force: boolean;
  json: boolean;
}

function when(iso: string | number): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime())
    ? String(iso)
    : d
        .toISOString()
        .replace("T", " ")
        .replace(/:\d\d\.\d+Z$/, " UTC");
}

export async function statusCommand(a: StatusArgs, out: Output): Promise<number> {
  const given = a.stick ?? (await askForStick("status"));
  const stick = openStick(given, { force: a.force, readOnlyMount: true });
  try {
    const sp = space(stick.root);
    const m = readMarker(stick.home);
    const head = {
      stick: stick.root,
      device: stick.device,
      label: stick.label,
      filesystem: stick.fsName,
      readOnly: stick.readOnly,
      space: sp,
    };
    const stickLine = `Stick:      ${stick.root}${stick.label ? ` "${stick.label}"` : ""} (${stick.fsName}${stick.device ? `, ${stick.device}` : ""}${stick.readOnly ? ", read-only" : ""})`;
    const spaceLine = `Space:      ${humanBytes(sp.free)} free of ${humanBytes(sp.total)}`;
    if (m.state === "no-home" || m.state === "home-not-dir") {
      out.say(stickLine);
      out.say(`Prepared:   no (there is no pershome folder). Run "pershome init ${given}" to prepare it.`);
      out.say(spaceLine);
      out.result({ ok: true, prepared: false, ...head });
      return EXIT.ok;
    }
    if (m.state === "newer") throw new StickError("newer-format", newerMessage(m.version));
    const report = checkHome(stick.home);
    let bytes = 0;
    let newest = 0;
    for (const d of report.dirs.values()) {
      for (const [name, f] of d.entries) {
        if (
          f.isFile &&
          (d.role === "links" || ((d.role === "home" || d.role === "dir") && !d.placeholders.has(name)))
        )
          bytes += f.size;
        if (d.role !== "area") newest = Math.max(newest, f.mtimeMs);
      }
      // a metadata log is written at every change the layer makes
      for (const s of d.slots) newest = Math.max(newest, s.mtimeMs);
    }
    const events = readStateLog(stick.home);
    const mountedNow = layerMountsOf(stick.home);
    const unclean = report.findings.filter(
      (f) =>
        f.kind === "record-open" ||
        f.kind === "log-leftover" ||
        (f.kind === "log-bad-lines" && f.severity === "problem"),
    );
    let clean: boolean | null = null;
    let cleanText: string;
    let lastUse: { time: string; host?: string; source: "state" | "files" } | null = null;
    const last = events?.[events.length - 1];
    if (mountedNow.length > 0) {
      cleanText = `in use now (mounted on ${mountedNow.join(", ")} on this computer)`;
    } else if (last) {
      clean = last.ev === "umount";
      const lastMount = [...events!].reverse().find((e) => e.ev === "mount");
      lastUse = { time: last.t, source: "state", ...(lastMount?.host ? { host: lastMount.host } : {}) };
      cleanText = clean
        ? "yes, the last time"
        : `no: the last mount${lastMount?.host ? ` (on ${lastMount.host})` : ""} was not ended cleanly (stick pulled, or the computer stopped). Run "pershome check ${given}".`;
    } else if (unclean.length > 0) {
      clean = false;
      cleanText = `no: ${unclean.length} sign(s) of an interrupted mount (files left open, a half-written save). Run "pershome check ${given}".`;
    } else {
      cleanText = "no sign of an interrupted mount (this pershome does not record unmounts yet)";
    }
    if (!lastUse && newest > 0) lastUse = { time: new Date(newest).toISOString(), source: "files" };
    const probs = problems(report);
    out.say(stickLine);
    out.say(
      `Prepared:   yes, pershome format ${m.state === "ok" ? m.version : 1}${m.state === "ok" && m.created ? ` (since ${when(m.created)})` : ""}` +
        (m.state === "garbage"
          ? " — but its format marker is damaged"
          : m.state === "no-area" || m.state === "missing"
            ? " (its marker is written at the first mount)"
            : ""),
    );
    out.say(
      `Home:       ${report.counts.files} files in ${report.counts.dirs} folders, ${humanBytes(bytes)}`,
    );
    out.say(spaceLine);
    out.say(
      `Last used:  ${lastUse ? `${when(lastUse.time)}${lastUse.host ? ` on ${lastUse.host}` : ""}${lastUse.source === "files" ? " (the newest change on the stick)" : ""}` : "never (the home is empty)"}`,
    );
    out.say(`Unmounted cleanly: ${cleanText}`);
    out.say(
      `Health:     ${probs.length === 0 ? "in order" : `${probs.length} problem(s) found: run "pershome check ${given}" to see them`}`,
    );
    out.result({
      ok: true,
      prepared: true,
      ...head,
      format:
        m.state === "ok"
          ? { version: m.version, created: m.created ?? null, marker: "ok" }
          : { version: 1, created: null, marker: m.state },
      files: report.counts.files,
      folders: report.counts.dirs,
      bytes,
      lastUse,
      cleanlyUnmounted: clean,
      inUse: mountedNow,
      problems: probs.length,
      host: os.hostname(),
    });
    return EXIT.ok;
  } finally {
    stick.release();
  }
}
