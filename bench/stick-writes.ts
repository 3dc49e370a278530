// What a workload writes to the stick, counted by the block device underneath the lower
// (/sys/block/<dev>/stat): write requests, which a real USB stick pays for one by one (a
// small write costs it about as much as a large one), and bytes. Unlike the seconds, these do
// not depend on the machine: the micro-VM's FAT32 figures count as much as the host's.
import fs from "node:fs";
import { must } from "./sh.js";

export interface WriteCount {
  requests: number;
  bytes: number;
}

/** The device's writes so far (fields 5 and 7 of the stat file: requests, 512-byte sectors). */
export function writesSoFar(device: string): WriteCount {
  const f = fs.readFileSync(`/sys/block/${device}/stat`, "utf8").trim().split(/\s+/).map(Number);
  return { requests: f[4]!, bytes: f[6]! * 512 };
}

/** Everything written back first (`sync`), then the count: what came before stays out of it. */
export async function settledWrites(device: string): Promise<WriteCount> {
  await must("sync");
  return writesSoFar(device);
}

/** The block device a mount point's filesystem lives on, as named under /sys/block (loop3, sda). */
export async function deviceOf(mountpoint: string): Promise<string> {
  const source = (await must(`findmnt -nro SOURCE --target '${mountpoint}'`)).trim();
  const name = source.replace(/^\/dev\//, "");
  if (!fs.existsSync(`/sys/block/${name}/stat`))
    throw new Error(`${mountpoint} is on ${source}, which /sys/block does not count (not a whole disk)`);
  return name;
}
