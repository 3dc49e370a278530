/**
 * The layer's side of `.pershome/state` (format: src/format/state.ts): a `mount` line when the
 * layer starts, an `umount` line once everything is written at a clean unmount, each fsync'd.
 * Advisory: a failure to write it is logged and never stops a mount.
 */
import fs from "node:fs";
import os from "node:os";
import { AREA_DIR } from "../format/marker.js";
import { STATE_FILE, STATE_MAX_BYTES, type StateEvent, stateLine } from "../format/state.js";
import { log } from "../log.js";

export function appendStateEvent(lowerDir: string, e: StateEvent): void {
  const file = `${lowerDir}/${AREA_DIR}/${STATE_FILE}`;
  try {
    if (e.ev === "mount") {
      const st = fs.lstatSync(file, { throwIfNoEntry: false });
      // History only: a big or odd (not a plain file) log is started afresh.
      if (st && (!st.isFile() || st.size > STATE_MAX_BYTES))
        fs.rmSync(file, { recursive: true, force: true });
    }
    const { O_WRONLY, O_APPEND, O_CREAT, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
    const fd = fs.openSync(file, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK, 0o644);
    try {
      fs.writeSync(fd, stateLine(e));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    log(
      "warn",
      `could not note the ${e.ev} in ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)}); "pershome status" will guess instead`,
    );
  }
}

export function mountEvent(version: string): StateEvent {
  return { ev: "mount", t: new Date().toISOString(), host: os.hostname(), ver: version };
}

export function umountEvent(): StateEvent {
  return { ev: "umount", t: new Date().toISOString() };
}
