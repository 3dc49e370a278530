/**
 * Finding the student's stick at login, before any desktop automounter runs: block devices from
 * lsblk (udev's view), the filesystem type from blkid when udev has not recorded it, then the
 * rule for more than one stick. Listing and filtering are separate so the rules are pure.
 */
import fs from "node:fs";
import path from "node:path";
import type { BlockDevice } from "../system/block-devices.js";
import {
  LSBLK_ARGS,
  blkidArgs,
  parseBlkidExport,
  parseLsblk,
  unknownDevice,
} from "../system/block-devices.js";
import { mountsOfDevice, readMounts } from "../system/mountinfo.js";
import type { LoginConfig } from "./config.js";
import { runCommand } from "./run.js";

export interface Candidate {
  device: string;
  fstype: "vfat" | "exfat";
  label: string;
  size: number;
}

export interface Skipped {
  device: string;
  why: string;
}

export async function listBlockDevices(): Promise<{ devices: BlockDevice[]; problem: string | null }> {
  const r = await runCommand("lsblk", LSBLK_ARGS, { timeoutSec: 15 });
  if (r.exitCode !== 0) return { devices: [], problem: r.summary };
  try {
    return { devices: parseLsblk(r.stdout), problem: null };
  } catch (err) {
    return { devices: [], problem: `lsblk gave unreadable output: ${(err as Error).message}` };
  }
}

/** blkid's low-level probe, for machines where udev has not recorded the filesystem (containers). */
export async function probeFilesystem(
  device: string,
): Promise<{ fstype: string; label: string; uuid: string }> {
  const r = await runCommand("blkid", blkidArgs(device), { timeoutSec: 15 });
  return parseBlkidExport(r.stdout);
}

/** Expands the admin's stick_devices (paths, symlinks like /dev/disk/by-path/…, and * globs) to real device paths. */
export function expandDeviceList(patterns: string[]): { devices: string[]; missing: string[] } {
  const devices: string[] = [];
  const missing: string[] = [];
  for (const pat of patterns) {
    let names = [pat];
    if (/[*?]/.test(pat)) {
      const dir = path.dirname(pat);
      const re = new RegExp(
        "^" +
          path
            .basename(pat)
            .replace(/[.+^${}()|[\]\\]/g, "\\$&")
            .replace(/\*/g, ".*")
            .replace(/\?/g, ".") +
          "$",
      );
      try {
        names = fs
          .readdirSync(dir)
          .filter((n) => re.test(n))
          .sort()
          .map((n) => path.join(dir, n));
      } catch {
        names = [];
      }
      if (names.length === 0) missing.push(pat);
    }
    for (const n of names) {
      try {
        const real = fs.realpathSync(n);
        if (fs.statSync(real).isBlockDevice()) {
          if (!devices.includes(real)) devices.push(real);
        } else missing.push(`${n} (not a block device)`);
      } catch {
        if (!/[*?]/.test(pat)) missing.push(n);
      }
    }
  }
  return { devices, missing };
}

/**
 * Which devices may be the stick. With stick_devices the admin's list is taken as it is (any
 * device type, removable or not); otherwise whole disks and partitions, removable ones only
 * unless removable_only = no. Loop devices and devices mounted anywhere are never taken
 * unasked: a second driver on a mounted FAT volume would corrupt it.
 */
export async function findCandidates(
  cfg: Pick<LoginConfig, "stickDevices" | "removableOnly" | "filesystems">,
): Promise<{ candidates: Candidate[]; skipped: Skipped[]; problems: string[] }> {
  const skipped: Skipped[] = [];
  const problems: string[] = [];
  const { devices, problem } = await listBlockDevices();
  if (problem) problems.push(problem);
  const known = new Map(devices.map((d) => [d.path, d]));
  let pool: BlockDevice[];
  const explicit = cfg.stickDevices.length > 0;
  if (explicit) {
    const { devices: listed, missing } = expandDeviceList(cfg.stickDevices);
    for (const m of missing) skipped.push({ device: m, why: "listed in stick_devices but not present" });
    pool = listed.map((p) => known.get(p) ?? unknownDevice(p));
  } else {
    pool = devices.filter((d) => {
      if (d.type !== "disk" && d.type !== "part") return false;
      if (cfg.removableOnly && !d.removable) return false;
      return true;
    });
  }
  const mounts = readMounts();
  const candidates: Candidate[] = [];
  for (const d of pool) {
    if (!explicit && d.size === 0) continue; // a card reader without a card
    let { fstype, label } = d;
    if (fstype === "") ({ fstype, label } = await probeFilesystem(d.path));
    if (fstype === "") {
      if (explicit) skipped.push({ device: d.path, why: "no filesystem found on it" });
      continue;
    }
    if (!cfg.filesystems.includes(fstype)) {
      if (explicit || d.removable)
        skipped.push({ device: d.path, why: `${fstype}, not ${cfg.filesystems.join(" or ")}` });
      continue;
    }
    const mounted = mountsOfDevice(d.path, d.majorMinor, mounts);
    if (mounted.length > 0) {
      skipped.push({
        device: d.path,
        why: `already mounted at ${mounted.map((m) => m.mountpoint).join(", ")}`,
      });
      continue;
    }
    candidates.push({ device: d.path, fstype: fstype as "vfat" | "exfat", label, size: d.size });
  }
  return { candidates, skipped, problems };
}

/** Natural order of kernel device names: sdb1 < sdb2 < sdc1 < sdaa1, loop2 < loop10. */
export function compareDevices(a: string, b: string): number {
  const tok = (s: string): string[] => path.basename(s).match(/\d+|\D+/g) ?? [];
  const ta = tok(a);
  const tb = tok(b);
  for (let i = 0; i < Math.max(ta.length, tb.length); i++) {
    const x = ta[i];
    const y = tb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const nx = /^\d/.test(x);
    const ny = /^\d/.test(y);
    if (nx && ny) {
      if (Number(x) !== Number(y)) return Number(x) - Number(y);
    } else if (x !== y) {
      // Within one family (sdb, sdaa: same first two letters) a longer name came later.
      if (x.slice(0, 2) === y.slice(0, 2) && x.length !== y.length) return x.length - y.length;
      return x < y ? -1 : 1;
    }
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface Choice<T extends { device: string; label: string }> {
  chosen: T;
  ignored: T[];
  /** why this one: "only" (one stick), "label" (labelled with the user name), "first" (first plugged in) */
  rule: "only" | "label" | "first";
}

/**
 * The order in which sticks are preferred:
 *  1. sticks whose label is the user's login name (case ignored),
 *  2. then the others,
 * each in kernel device order (sdb before sdc), which is the order they were plugged in since boot.
 */
export function preferenceOrder<T extends { device: string; label: string }>(sticks: T[], user: string): T[] {
  const ordered = [...sticks].sort((a, b) => compareDevices(a.device, b.device));
  const named = (s: T): boolean => s.label.toLowerCase() === user.toLowerCase();
  return [...ordered.filter(named), ...ordered.filter((s) => !named(s))];
}

/** The rule for more than one stick with a pershome folder: the first in preferenceOrder. */
export function chooseStick<T extends { device: string; label: string }>(
  sticks: T[],
  user: string,
): Choice<T> | null {
  const order = preferenceOrder(sticks, user);
  const chosen = order[0];
  if (!chosen) return null;
  const rule =
    order.length === 1 ? "only" : chosen.label.toLowerCase() === user.toLowerCase() ? "label" : "first";
  return { chosen, ignored: order.slice(1), rule };
}
