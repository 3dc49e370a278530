/**
 * What is mounted where, from /proc/self/mountinfo: read without touching any mounted
 * filesystem (a stuck FUSE daemon cannot hang it). Shared by the login hook and the stick tools.
 */
import fs from "node:fs";

export interface MountEntry {
  id: number;
  /** the device number the mount's files report ("8:17") */
  majorMinor: string;
  mountpoint: string;
  fstype: string;
  source: string;
  /** per-mount options then the superblock's ("rw", "nosuid", …, "user_id=0") */
  options: string[];
}

/** The fuse filesystem type of a mounted pershome layer. */
export const LAYER_FSTYPE = "fuse.pershome";

/** Undoes mountinfo's \040-style octal escapes (spaces, tabs, newlines, backslashes in paths). */
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
      fstype: b[0]!,
      source: unescape(b[1]!),
      options: [...a[5]!.split(","), ...(b[2] ? b[2].split(",") : [])],
    });
  }
  return out;
}

/** This process's mounts; none when /proc is not there (a bare chroot). */
export function readMounts(): MountEntry[] {
  try {
    return parseMountinfo(fs.readFileSync("/proc/self/mountinfo", "utf8"));
  } catch {
    return [];
  }
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
