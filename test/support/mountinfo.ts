// /proc/self/mountinfo, parsed.

import { readFileSync } from "node:fs";

export interface MountEntry {
  mountPoint: string;
  /** per-mount options (field 6): rw, nosuid, nodev, relatime… */
  mountOptions: string[];
  fsType: string;
  source: string;
  superOptions: string[];
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function mounts(): MountEntry[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [pre, post] = line.split(" - ") as [string, string];
      const f = pre.split(" ");
      const g = post.split(" ");
      return {
        mountPoint: unescape(f[4] ?? ""),
        mountOptions: (f[5] ?? "").split(","),
        fsType: g[0] ?? "",
        source: unescape(g[1] ?? ""),
        superOptions: (g[2] ?? "").split(","),
      };
    });
}

/** The topmost mount at exactly `path`, if any. */
export function mountAt(path: string): MountEntry | undefined {
  return mounts()
    .filter((m) => m.mountPoint === path)
    .pop();
}

export function isMounted(path: string): boolean {
  return mountAt(path) !== undefined;
}
