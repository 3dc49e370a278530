import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { MissingToolError } from "./errors.js";

/** Debian package that provides each host program we call. */
const PACKAGE_OF: Record<string, string> = {
  "qemu-system-x86_64": "qemu-system-x86",
  busybox: "busybox-static",
  setpriv: "util-linux",
  "mkfs.vfat": "dosfstools",
  "fsck.fat": "dosfstools",
  "mkfs.exfat": "exfatprogs",
  "fsck.exfat": "exfatprogs",
  "mount.exfat-fuse": "exfat-fuse",
  fusermount: "fuse3",
  fusermount3: "fuse3",
  losetup: "mount",
  mdir: "mtools",
  mtype: "mtools",
  mcopy: "mtools",
  mmd: "mtools",
  xz: "xz-utils",
  zstd: "zstd",
};

const SEARCH_EXTRA = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/** Absolute path of an executable on PATH (plus the sbin directories), or undefined. */
export function findTool(name: string): string | undefined {
  if (name.includes("/")) return isExecutable(name) ? name : undefined;
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter(Boolean), ...SEARCH_EXTRA];
  for (const dir of dirs) {
    const p = join(dir, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

/** Like findTool, but throws a MissingToolError that says which package to install. */
export function requireTool(name: string): string {
  const p = findTool(name);
  if (p) return p;
  const pkg = PACKAGE_OF[name];
  throw new MissingToolError(`${name} not found${pkg ? `: apt-get install ${pkg}` : ""}`);
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
