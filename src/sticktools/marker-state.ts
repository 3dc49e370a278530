/** What a stick's /pershome says about itself: is it there, and what does its marker say. */
import fs from "node:fs";
import { AREA_DIR, FORMAT_VERSION, MARKER_FILE, checkMarker } from "../format/marker.js";
import { errCode } from "./common.js";

export type MarkerState =
  | { state: "no-home" }
  | { state: "home-not-dir" }
  /** /pershome exists (made by hand?) but has no .pershome area yet: the layer adds it at mount */
  | { state: "no-area" }
  | { state: "area-not-dir" }
  | { state: "missing" }
  | { state: "garbage"; text: string }
  | { state: "newer"; version: number }
  | { state: "ok"; version: number; created?: string };

export function readMarker(home: string): MarkerState {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(home);
  } catch {
    return { state: "no-home" };
  }
  if (!st.isDirectory()) return { state: "home-not-dir" };
  const area = `${home}/${AREA_DIR}`;
  try {
    if (!fs.lstatSync(area).isDirectory()) return { state: "area-not-dir" };
  } catch {
    return { state: "no-area" };
  }
  let text: Buffer;
  try {
    const fd = fs.openSync(
      `${area}/${MARKER_FILE}`,
      fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK,
    );
    try {
      if (!fs.fstatSync(fd).isFile()) return { state: "garbage", text: "(not a file)" };
      const buf = Buffer.alloc(4096);
      text = buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, 0));
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    if (errCode(err) === "ENOENT") return { state: "missing" };
    return { state: "garbage", text: `(unreadable: ${errCode(err) ?? String(err)})` };
  }
  const c = checkMarker(text);
  if (c.ok)
    return {
      state: "ok",
      version: c.marker.version,
      ...(c.marker.created ? { created: c.marker.created } : {}),
    };
  if (c.reason === "newer") return { state: "newer", version: c.version };
  return { state: "garbage", text: text.toString("utf8").slice(0, 80) };
}

export function newerMessage(version: number): string {
  return `This stick was prepared by a newer pershome (format ${version}; this pershome knows format ${FORMAT_VERSION}). Nothing was changed. Update pershome on this computer to use it.`;
}
