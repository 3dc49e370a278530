/** Reads /proc/self/mountinfo: which mounts exist where, without touching any mounted filesystem. */
import fs from "node:fs";

export interface MountEntry {
  id: number;
  majorMinor: string;
  mountpoint: string;
  fstype: string;
  source: string;
  options: string;
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const dash = line.indexOf(" - ");
    if (dash < 0) continue;
    const a = line.slice(0, dash).split(" ");
    const b = line.slice(dash + 3).split(" ");
    if (a.length < 6 || b.length < 2) continue;
    out.push({
      id: Number(a[0]),
      majorMinor: a[2]!,
      mountpoint: unescape(a[4]!),
      options: a[5]!,
      fstype: b[0]!,
      source: unescape(b[1]!),
    });
  }
  return out;
}

export function readMounts(): MountEntry[] {
  return parseMountinfo(fs.readFileSync("/proc/self/mountinfo", "utf8"));
}

/** The top-most mount at exactly this path, if any. */
export function mountAt(path: string, mounts = readMounts()): MountEntry | undefined {
  let found: MountEntry | undefined;
  for (const m of mounts) if (m.mountpoint === path) found = m;
  return found;
}

/** Every mount at or below this path. */
export function mountsUnder(path: string, mounts = readMounts()): MountEntry[] {
  return mounts.filter(
    (m) => m.mountpoint === path || m.mountpoint.startsWith(path.endsWith("/") ? path : path + "/"),
  );
}

/** Mounts of a block device, by its device number ("8:17") or its path as the mount source. */
export function mountsOfDevice(
  devPath: string,
  majorMinor: string | null,
  mounts = readMounts(),
): MountEntry[] {
  return mounts.filter(
    (m) =>
      m.source === devPath ||
      (majorMinor !== null && m.majorMinor === majorMinor && m.source.startsWith("/dev/")),
  );
}

export const LAYER_FSTYPE = "fuse.pershome";
