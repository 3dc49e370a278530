import { mkdirSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import type { FsckResult } from "./fat.js";
import { mustRun, runTool } from "./run.js";

/** Creates a fresh exFAT image of `sizeMb` MiB (replacing `path`). */
export async function makeExfatStick(path: string, sizeMb: number, label = "STICK"): Promise<string> {
  rmSync(path, { force: true });
  writeFileSync(path, "");
  truncateSync(path, Math.round(sizeMb * 1024 * 1024));
  await mustRun("mkfs.exfat", ["-L", label, path]);
  return path;
}

/** fsck.exfat -n (read-only check). */
export async function fsckExfat(image: string): Promise<FsckResult> {
  const r = await runTool("fsck.exfat", ["-n", image]);
  return { clean: r.exitCode === 0, exitCode: r.exitCode, output: (r.stdout + r.stderr).trim() };
}

export interface ExfatMount {
  image: string;
  mountpoint: string;
  loopDevice: string;
}

export interface ExfatMountOptions {
  uid: number;
  gid: number;
  /** e.g. 0o022; default: exfat-fuse's (0, everything rwx for all). */
  umask?: number;
  /** More -o options for mount.exfat-fuse. */
  options?: string[];
}

/**
 * Mounts an exFAT image on the host through a loop device and exfat-fuse (as root). Since the
 * source is a block device, exfat-fuse mounts as "fuseblk", so unmounting waits until it has
 * written everything back.
 */
export async function mountExfatOnHost(
  image: string,
  mountpoint: string,
  opts: ExfatMountOptions,
): Promise<ExfatMount> {
  const loop = (await mustRun("losetup", ["-f", "--show", image])).stdout.trim();
  try {
    mkdirSync(mountpoint, { recursive: true });
    const o = ["nosuid", "nodev", `uid=${opts.uid}`, `gid=${opts.gid}`];
    if (opts.umask !== undefined) o.push(`umask=${opts.umask.toString(8).padStart(3, "0")}`);
    o.push(...(opts.options ?? []));
    await mustRun("mount.exfat-fuse", ["-o", o.join(","), loop, mountpoint]);
  } catch (e) {
    await runTool("losetup", ["-d", loop]);
    throw e;
  }
  return { image, mountpoint, loopDevice: loop };
}

/** Unmounts what mountExfatOnHost mounted and detaches its loop device. */
export async function unmountExfat(m: ExfatMount): Promise<void> {
  const u = await runTool("umount", [m.mountpoint]);
  if (u.exitCode !== 0) {
    // Lazy unmount as a last resort, so the loop device can still go away once the mount is idle.
    await runTool("umount", ["-l", m.mountpoint]);
  }
  await mustRun("losetup", ["-d", m.loopDevice]);
  if (u.exitCode !== 0) throw new Error(`umount ${m.mountpoint} failed: ${u.stderr.trim()}`);
}
