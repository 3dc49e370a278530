/**
 * The sticks plugged in: FAT32/exFAT filesystems from lsblk (with blkid where udev has not
 * recorded the type), removable and USB ones first, never the machine's EFI partition. And
 * the question "which one?" on the terminal.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import readline from "node:readline";
import { EFI_SYSTEM_PARTITION, LSBLK_ARGS, parseLsblk } from "../system/block-devices.js";
import { readMounts } from "../system/mountinfo.js";
import { EXIT, StickError, humanBytes } from "./common.js";
import { kindOfFsType, probeDevice } from "./locate.js";

export interface StickCandidate {
  device: string;
  fstype: "vfat" | "exfat";
  label: string;
  size: number;
  removable: boolean;
  usb: boolean;
  mountpoint: string | null;
  /** has a /pershome folder (only known when mounted) */
  prepared: boolean | null;
}

/** Turns lsblk's JSON into candidates; `probe` fills in types udev did not record. Pure but for probe. */
export function candidatesFromLsblk(
  json: string,
  probe: (dev: string) => { type: string; label: string },
  mountpointOf: (dev: string) => string | null,
): StickCandidate[] {
  const out: StickCandidate[] = [];
  for (const d of parseLsblk(json)) {
    if (d.type !== "part" && d.type !== "disk" && d.type !== "loop") continue;
    if (d.partType === EFI_SYSTEM_PARTITION) continue;
    let { fstype, label } = d;
    if (!fstype) {
      // udev may not have recorded it (containers, early boot): ask blkid (needs root)
      const p = probe(d.path);
      fstype = p.type;
      label ||= p.label;
    }
    const kind = kindOfFsType(fstype);
    if (kind !== "vfat" && kind !== "exfat") continue;
    const mountpoint = d.mountpoint ?? mountpointOf(d.path);
    if (mountpoint === "/boot/efi" || mountpoint === "/efi" || mountpoint === "/boot") continue;
    out.push({
      device: d.path,
      fstype: kind,
      label,
      size: d.size,
      removable: d.removable,
      usb: d.usb,
      mountpoint,
      prepared: null,
    });
  }
  const rank = (c: StickCandidate): number => (c.usb ? 0 : c.removable ? 1 : 2);
  out.sort((a, b) => rank(a) - rank(b) || a.device.localeCompare(b.device));
  return out;
}

export function findSticks(): StickCandidate[] {
  const r = spawnSync("lsblk", LSBLK_ARGS, { encoding: "utf8", timeout: 20_000 });
  if (r.status !== 0 || !r.stdout) return [];
  const mounts = readMounts();
  const mountpointOf = (dev: string): string | null => {
    let real = dev;
    try {
      real = fs.realpathSync(dev);
    } catch {
      /* as given */
    }
    return mounts.find((m) => m.source === dev || m.source === real)?.mountpoint ?? null;
  };
  let list: StickCandidate[];
  try {
    // a device that does not answer is left out, not the whole list
    const probe = (dev: string): { type: string; label: string } => {
      try {
        return probeDevice(dev);
      } catch {
        return { type: "", label: "" };
      }
    };
    list = candidatesFromLsblk(r.stdout, probe, mountpointOf);
  } catch {
    return []; // not lsblk's JSON: as if it had failed
  }
  // PERSHOME_STICKS=/dev/sdb1:/dev/sdc1 limits what is offered (a lab machine with FAT
  // partitions of its own; the helper's tests)
  const only = (process.env.PERSHOME_STICKS ?? "").split(":").filter(Boolean);
  if (only.length > 0) list = list.filter((c) => only.includes(c.device));
  for (const c of list) {
    // Another stick's driver may hang (a stuck FUSE daemon): look in a child process that is
    // killed after a moment, so listing the sticks never hangs.
    if (c.mountpoint) c.prepared = existsWithin(`${c.mountpoint}/pershome`, 3000);
  }
  return list;
}

/** Does the path exist? null when the filesystem does not answer within `ms`. */
function existsWithin(p: string, ms: number): boolean | null {
  const r = spawnSync("stat", ["-c", "%F", "--", p], {
    encoding: "utf8",
    timeout: ms,
    killSignal: "SIGKILL",
  });
  if (r.error || r.signal) return null;
  return r.status === 0;
}

/** One line for a candidate, as the CLI and the graphical helper show it. */
export function describeCandidate(c: StickCandidate): string {
  const name = c.label ? `"${c.label}"` : "(no label)";
  const where = c.mountpoint ? `at ${c.mountpoint}` : "not opened";
  const kind = c.fstype === "vfat" ? "FAT32" : "exFAT";
  const prep =
    c.prepared === true ? ", has a pershome home" : c.prepared === false ? ", not prepared yet" : "";
  return `${c.device}  ${name}  ${humanBytes(c.size)} ${kind}${c.usb ? " USB" : c.removable ? " removable" : ""}, ${where}${prep}`;
}

/**
 * No STICK given: list the candidates and ask on the terminal which one. Without a terminal,
 * lists them and stops (a script must name the stick).
 */
export async function askForStick(verb: string): Promise<string> {
  const list = findSticks();
  if (list.length === 0) {
    throw new StickError(
      "no-stick",
      `No FAT32 or exFAT stick was found. Plug in a USB stick (FAT32 or exFAT, as sold), then run "pershome ${verb}" again, or name its folder: pershome ${verb} /media/$USER/STICK`,
    );
  }
  const lines = list.map((c, i) => `  ${i + 1}) ${describeCandidate(c)}`);
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    throw new StickError(
      "no-stick",
      `Which stick? Name it on the command line, e.g. "pershome ${verb} ${list[0]!.mountpoint ?? list[0]!.device}". Sticks found:\n${lines.join("\n")}`,
      EXIT.usage,
    );
  }
  process.stderr.write(`Sticks found:\n${lines.join("\n")}\n`);
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = (
      await new Promise<string>((resolve) =>
        rl.question(`Which one (1-${list.length}, or its device or name; Enter to cancel)? `, resolve),
      )
    ).trim();
    const n = Number(answer);
    const c =
      answer === ""
        ? undefined
        : Number.isInteger(n) && n >= 1 && n <= list.length
          ? list[n - 1]
          : list.find(
              (x) =>
                x.device === answer ||
                x.mountpoint === answer ||
                x.label.toLowerCase() === answer.toLowerCase(),
            );
    if (!c) {
      throw new StickError(
        "cancelled",
        `Nothing done (${answer ? `"${answer}" is not one of the sticks listed` : "no stick chosen"}).`,
      );
    }
    return c.mountpoint ?? c.device;
  } finally {
    rl.close();
  }
}
