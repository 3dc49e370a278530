/**
 * From the STICK a user names (a mount point, the stick's pershome folder, or a block device)
 * to the stick's root, its filesystem and whether it can be written; a device that is not
 * mounted is mounted for the command's duration and unmounted afterwards.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { blkidArgs, parseBlkidExport } from "../system/block-devices.js";
import type { MountEntry } from "../system/mountinfo.js";
import { readMounts } from "../system/mountinfo.js";
import { EXIT, StickError, errCode } from "./common.js";

function devString(dev: number): string {
  // Linux's new_decode_dev: major = (dev & 0xfff00) >> 8, minor = (dev & 0xff) | ((dev >> 12) & 0xfff00)
  const major = (dev & 0xfff00) >>> 8;
  const minor = (dev & 0xff) | ((dev >>> 12) & 0xfff00);
  return `${major}:${minor}`;
}

/** The mount a path lives on (matched by device number, the last such mount wins). */
export function mountOf(p: string): MountEntry | undefined {
  let dev: string;
  try {
    dev = devString(fs.statSync(p).dev);
  } catch {
    return undefined;
  }
  const real = safeRealpath(p);
  const all = readMounts().filter((m) => m.majorMinor === dev);
  // Several mounts may share a device (bind mounts): take the deepest one above the path.
  const above = all.filter(
    (m) => real === m.mountpoint || real.startsWith(m.mountpoint.replace(/\/$/, "") + "/"),
  );
  above.sort((a, b) => b.mountpoint.length - a.mountpoint.length);
  return above[0] ?? all[all.length - 1];
}

export function safeRealpath(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

export type FsKind = "vfat" | "exfat" | "pershome" | "other";

/** blkid's TYPE and LABEL of a device ("" when it cannot tell). */
export function probeDevice(device: string): { type: string; label: string } {
  // A slow stick on a busy machine can take seconds to answer; a probe cut short must not be
  // taken for "no filesystem" (init would then call a FAT stick "not FAT").
  const r = spawnSync("blkid", blkidArgs(device), {
    encoding: "utf8",
    timeout: 60_000,
    killSignal: "SIGKILL",
  });
  if (r.error || r.signal)
    throw new StickError(
      "io-error",
      `${device} did not answer in time (blkid ${r.signal ? "was stopped after 60 s" : `failed: ${r.error?.message}`}). Check that the stick is plugged in properly, wait a moment and try again.`,
    );
  const { fstype, label } = parseBlkidExport(r.stdout ?? "");
  return { type: fstype, label };
}

export function kindOfFsType(t: string): FsKind {
  const s = t.toLowerCase();
  if (s === "vfat" || s === "msdos" || s === "fat" || s === "fat32") return "vfat";
  if (s === "exfat" || s === "fuse.exfat" || s === "fuse.exfat-fuse") return "exfat";
  if (s === "fuse.pershome") return "pershome";
  return "other";
}

/** The filesystem of a mount, looking behind fuseblk (exfat-fuse) at its device. */
export function fsKindOf(m: MountEntry | undefined): { kind: FsKind; name: string } {
  if (!m) return { kind: "other", name: "unknown" };
  let kind = kindOfFsType(m.fstype);
  if (kind === "other" && m.fstype === "fuseblk" && m.source.startsWith("/dev/"))
    kind = kindOfFsType(probeDevice(m.source).type);
  const name =
    kind === "vfat"
      ? "FAT32 (vfat)"
      : kind === "exfat"
        ? "exFAT"
        : kind === "pershome"
          ? "a pershome mount"
          : m.fstype;
  return { kind, name };
}

export function isReadOnly(root: string, m: MountEntry | undefined): boolean {
  if (m && m.options.includes("ro")) return true;
  try {
    fs.accessSync(root, fs.constants.W_OK);
    return false;
  } catch (err) {
    return errCode(err) === "EROFS" || errCode(err) === "EACCES";
  }
}

export interface Stick {
  /** where the stick's filesystem is (the folder that holds /pershome) */
  root: string;
  /** root + "/pershome" */
  home: string;
  /** the block device, when known */
  device: string | null;
  fs: FsKind;
  fsName: string;
  label: string;
  readOnly: boolean;
  /** the stick was mounted by this command (and is unmounted by release()) */
  mountedHere: boolean;
  /** unmounts what this command mounted; safe to call twice */
  release(): void;
  /** for messages: how the user named it */
  given: string;
}

export interface OpenOptions {
  /** accept a folder that is not on a FAT32/exFAT stick (tests, a stick copied to disk) */
  force?: boolean;
  /** mount a device read-only if it has to be mounted */
  readOnlyMount?: boolean;
}

function isMountRoot(p: string): boolean {
  const real = safeRealpath(p);
  if (real === "/") return true;
  try {
    return (
      fs.statSync(real).dev !== fs.statSync(path.dirname(real)).dev ||
      readMounts().some((m) => m.mountpoint === real)
    );
  } catch {
    return false;
  }
}

/** Mount options for a stick this command mounts itself (as the desktop would). */
function tempMount(device: string, type: string, ro: boolean): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pershome-stick-"));
  const kind = kindOfFsType(type);
  const common = ["nosuid", "nodev", ...(ro ? ["ro"] : [])];
  const tries: [string, string[]][] = [];
  if (kind === "vfat")
    tries.push([
      "mount",
      ["-t", "vfat", "-o", [...common, "utf8", "shortname=mixed", "flush"].join(","), device, dir],
    ]);
  else {
    tries.push(["mount", ["-t", "exfat", "-o", [...common, "iocharset=utf8"].join(","), device, dir]]);
    tries.push(["mount.exfat-fuse", ["-o", common.join(","), device, dir]]);
  }
  let why = "";
  for (const [file, args] of tries) {
    const r = spawnSync(file, args, { encoding: "utf8", timeout: 60_000 });
    if (r.status === 0) return dir;
    why = (r.stderr || r.error?.message || "").trim();
  }
  fs.rmdirSync(dir);
  throw new StickError(
    "mount-failed",
    `Could not mount ${device} (${why}). Open the stick in the file manager (or mount it), then give its folder.`,
  );
}

/** Finds the mount point of a device, if it is mounted. */
function mountpointOfDevice(device: string): string | null {
  const real = safeRealpath(device);
  for (const m of readMounts()) if (m.source === device || m.source === real) return m.mountpoint;
  return null;
}

/** Resolves what the user gave as STICK. */
export function openStick(given: string, o: OpenOptions = {}): Stick {
  let st: fs.Stats;
  try {
    st = fs.statSync(given);
  } catch {
    throw new StickError(
      "not-found",
      `${given} does not exist. Give the stick's folder (e.g. /media/$USER/STICK) or its device (e.g. /dev/sdb1); "pershome sticks" lists the sticks plugged in.`,
    );
  }
  let root: string;
  let device: string | null = null;
  let mountedHere = false;
  let label = "";
  if (st.isBlockDevice()) {
    device = given;
    const probe = probeDevice(given);
    label = probe.label;
    const mp = mountpointOfDevice(given);
    if (mp) root = mp;
    else {
      const k = kindOfFsType(probe.type);
      if (k !== "vfat" && k !== "exfat") {
        throw new StickError(
          "not-fat",
          `${given} holds ${probe.type ? `a ${probe.type} filesystem` : "no filesystem pershome knows"}, not FAT32 or exFAT. pershome only uses FAT32 or exFAT sticks (it never reformats one): use another stick, or format this one as exFAT on any computer first.`,
        );
      }
      root = tempMount(given, probe.type, o.readOnlyMount ?? false);
      mountedHere = true;
    }
  } else if (st.isDirectory()) {
    root = safeRealpath(given);
    // The stick's pershome folder itself: use the stick it is on.
    if (
      path.basename(root) === "pershome" &&
      (fs.existsSync(path.join(root, ".pershome")) || isMountRoot(path.dirname(root)))
    ) {
      root = path.dirname(root);
    }
  } else {
    throw new StickError(
      "not-a-stick",
      `${given} is neither a folder nor a device. Give the stick's folder or its device ("pershome sticks" lists them).`,
    );
  }
  const m = mountOf(root);
  const { kind, name } = fsKindOf(m);
  if (!device && m?.source.startsWith("/dev/")) device = m.source;
  const release = (): void => {
    if (!mountedHere) return;
    mountedHere = false;
    const r = spawnSync("umount", [root], { encoding: "utf8", timeout: 120_000 });
    if (r.status !== 0) spawnSync("umount", ["-l", root], { timeout: 30_000 });
    try {
      fs.rmdirSync(root);
    } catch {
      /* still busy: it goes when unmounted */
    }
  };
  try {
    if (kind === "pershome") {
      throw new StickError(
        "not-a-stick",
        `${given} is a pershome home (the layer's mount), not the stick itself. Give the stick's folder (where the "pershome" folder is) instead.`,
      );
    }
    if (kind !== "vfat" && kind !== "exfat" && !o.force) {
      const fsn = m ? m.fstype : "unknown";
      throw new StickError(
        "not-fat",
        `${given} is not on a FAT32 or exFAT stick (its filesystem is ${fsn}). pershome keeps homes on FAT32/exFAT USB sticks: give the stick's folder (e.g. /media/$USER/STICK) or its device. (--force uses any folder, for tests.)`,
      );
    }
    if ((kind === "vfat" || kind === "exfat") && !o.force && !isMountRoot(root)) {
      throw new StickError(
        "not-a-stick",
        `${given} is a folder inside a stick, not the stick itself. Give the stick's own folder (${m?.mountpoint ?? "its mount point"}).`,
      );
    }
  } catch (e) {
    release();
    throw e;
  }
  if (!label && device) label = probeDevice(device).label;
  return {
    root,
    home: path.join(root, "pershome"),
    device,
    fs: kind,
    fsName: kind === "other" ? `a plain folder (${m?.fstype ?? "unknown"})` : name,
    label,
    readOnly: isReadOnly(root, m),
    mountedHere,
    release,
    given,
  };
}

/** Free and total bytes of the filesystem holding `p`. */
export function space(p: string): { free: number; total: number } {
  const s = fs.statfsSync(p);
  return { free: s.bavail * s.bsize, total: s.blocks * s.bsize };
}

/** Is the layer mounted on this stick's pershome folder right now (on this machine)? */
export function layerMountsOf(home: string): string[] {
  const real = safeRealpath(home);
  return readMounts()
    .filter((m) => m.fstype === "fuse.pershome" && (m.source === real || m.source === home))
    .map((m) => m.mountpoint);
}

export function refuseIfInUse(home: string): void {
  const mps = layerMountsOf(home);
  if (mps.length > 0) {
    throw new StickError(
      "in-use",
      `This stick's home is mounted right now (on ${mps.join(", ")}). Log out or run "pershome umount ${mps[0]}" first, then try again.`,
      EXIT.failed,
    );
  }
}
