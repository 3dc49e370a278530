/**
 * Mounting the stick privately for the layer: as root, under <state_dir>/<user>/, with nosuid,
 * nodev, the user's uid/gid, a private umask and (FAT) flush; unmounting it again.
 */
import fs from "node:fs";
import os from "node:os";
import type { LoginConfig } from "./config.js";
import { mountAt, readMounts } from "../system/mountinfo.js";
import { type CommandResult, runCommand } from "./run.js";
import type { Candidate } from "./stick-discovery.js";

export interface StickMount {
  device: string;
  mountpoint: string;
  driver: string;
  options: string;
}

/**
 * Whether the running kernel can mount `fs_`: already registered (/proc/filesystems), or built
 * as a module that `mount -t` loads on demand (Debian's kernels: exfat is a module, not loaded
 * until the first exFAT mount).
 */
export function kernelHas(fs_: string, release = os.release()): boolean {
  try {
    if (new RegExp(`\\s${fs_}$`, "m").test(fs.readFileSync("/proc/filesystems", "utf8"))) return true;
  } catch {
    /* no /proc: look for the module */
  }
  for (const list of ["modules.dep", "modules.builtin"]) {
    try {
      const text = fs.readFileSync(`/lib/modules/${release}/${list}`, "utf8");
      if (new RegExp(`(^|/)${fs_}\\.ko(\\.[a-z]+)?(:|$)`, "m").test(text)) return true;
    } catch {
      /* not there */
    }
  }
  return false;
}

function octal(n: number): string {
  return "0" + n.toString(8).padStart(3, "0");
}

/** The mount command for a stick, chosen by its filesystem and what this machine has. */
export function stickMountCommand(
  c: Pick<Candidate, "device" | "fstype">,
  mountpoint: string,
  owner: { uid: number; gid: number },
  cfg: Pick<LoginConfig, "stickUmask" | "stickOptions">,
  kernelExfat = kernelHas("exfat"),
): { file: string; args: string[]; driver: string; options: string } {
  const common = [
    "nosuid",
    "nodev",
    "noatime",
    `uid=${owner.uid}`,
    `gid=${owner.gid}`,
    `dmask=${octal(cfg.stickUmask)}`,
    `fmask=${octal(cfg.stickUmask | 0o111)}`,
  ];
  if (c.fstype === "vfat") {
    const o = [...common, "flush", "shortname=mixed", "utf8", "errors=remount-ro", ...cfg.stickOptions].join(
      ",",
    );
    return {
      file: "mount",
      args: ["-t", "vfat", "-o", o, "--", c.device, mountpoint],
      driver: "vfat (kernel)",
      options: o,
    };
  }
  if (kernelExfat) {
    const o = [...common, "iocharset=utf8", "errors=remount-ro", ...cfg.stickOptions].join(",");
    return {
      file: "mount",
      args: ["-t", "exfat", "-o", o, "--", c.device, mountpoint],
      driver: "exfat (kernel)",
      options: o,
    };
  }
  // exfat-fuse has no "flush": its writes go to the device as the FUSE requests arrive, and the
  // unmount at logout waits until it has written everything (it mounts as fuseblk).
  const o = [...common, ...cfg.stickOptions].join(",");
  return {
    file: "mount.exfat-fuse",
    args: ["-o", o, c.device, mountpoint],
    driver: "exfat-fuse",
    options: o,
  };
}

export async function mountStick(
  c: Candidate,
  mountpoint: string,
  owner: { uid: number; gid: number },
  cfg: Pick<LoginConfig, "stickUmask" | "stickOptions" | "mountTimeout">,
): Promise<{ ok: true; mount: StickMount } | { ok: false; result: CommandResult }> {
  fs.mkdirSync(mountpoint, { recursive: true, mode: 0o700 });
  const cmd = stickMountCommand(c, mountpoint, owner, cfg);
  const result = await runCommand(cmd.file, cmd.args, { timeoutSec: cfg.mountTimeout });
  if (result.exitCode !== 0 || !mountAt(mountpoint)) {
    if (mountAt(mountpoint)) await runCommand("umount", ["-l", mountpoint], { timeoutSec: 10 });
    return { ok: false, result };
  }
  return { ok: true, mount: { device: c.device, mountpoint, driver: cmd.driver, options: cmd.options } };
}

/** True when the stick's root holds a pershome folder (a real folder, not a file). */
export function hasPershomeFolder(stickRoot: string): boolean {
  try {
    return fs.lstatSync(`${stickRoot}/pershome`).isDirectory();
  } catch {
    return false;
  }
}

export type UnmountOutcome = "unmounted" | "not-mounted" | "busy" | "failed";

/** One plain unmount attempt (no waiting). For fuseblk and FAT it returns once all is written. */
export async function unmountPath(
  mountpoint: string,
  timeoutSec = 60,
): Promise<{ outcome: UnmountOutcome; result: CommandResult | null }> {
  const target = mountAt(mountpoint);
  if (!target) return { outcome: "not-mounted", result: null };
  const result = await runCommand("umount", [mountpoint], { timeoutSec });
  // Gone is that mount, not every mount at the path: a home may itself be a mount (LTSP's SSHFS
  // home, NFS) that the layer was stacked on, and it stays.
  const gone = !readMounts().some((m) => m.id === target.id);
  if (result.exitCode === 0 && gone) return { outcome: "unmounted", result };
  if (/busy/i.test(result.stderr)) return { outcome: "busy", result };
  return { outcome: gone ? "unmounted" : "failed", result };
}

/** Detaches a mount that cannot be unmounted cleanly (it goes away once nothing uses it). */
export async function lazyUnmount(mountpoint: string): Promise<CommandResult | null> {
  if (!mountAt(mountpoint)) return null;
  return runCommand("umount", ["-l", mountpoint], { timeoutSec: 30 });
}

/** Asks the stick's filesystem to write everything out (sync -f); bounded, failures are only logged. */
export async function syncStick(root: string): Promise<CommandResult> {
  return runCommand("sync", ["-f", root], { timeoutSec: 30 });
}
