// The lower filesystems: a fresh ext4 image and a fresh exFAT image, each on a loop device, and
// (inside the micro-VM only, bench/fat32-vm.ts) a fresh FAT32 stick under the kernel's vfat.
import fs from "node:fs";
import path from "node:path";
import { mountExfatOnHost, unmountExfat, type ExfatMount } from "../lab/sticks/index.js";
import { fingerprint } from "../src/format/describe.js";
import { snapshotText, type MetaRecord } from "../src/format/records.js";
import { META_SLOTS } from "../src/fs/dir-meta.js";
import { factsOf } from "../src/fs/lower.js";
import { must } from "./sh.js";
import { deviceOf } from "./stick-writes.js";

export const LOWER_NAMES = ["plain", "exfat", "fat32"] as const;
export type LowerName = (typeof LOWER_NAMES)[number];

/** The guest's device for the FAT32 stick the host plugged in (bench/fat32-vm.ts). */
export const VM_STICK = "/dev/sda";

export interface Lower {
  name: LowerName;
  /** A directory on the lower filesystem where runs make their folders. */
  root: string;
  /** the block device under it, as named in /sys/block (bench/stick-writes.ts counts its writes) */
  device: string;
  close(): Promise<void>;
}

export async function makeLower(name: LowerName, work: string, sizeGb: number): Promise<Lower> {
  const root = `${work}/${name}-lower`;
  if (name === "fat32") {
    // The kernel's vfat with the login hook's name options (src/login/stick-mount.ts) but not
    // its "flush": that makes each close of a written file sleep ~100 ms, which the floor and
    // bindfs -s pay in full and pershome and posixovl on other threads, and would hide the
    // layers' other costs. bench/vfat-flush/run.mjs measures with it (docs/benchmarks.md).
    fs.mkdirSync(root, { recursive: true });
    await must(`mount -t vfat -o noatime,shortname=mixed,utf8 ${VM_STICK} '${root}'`);
    return {
      name,
      root,
      device: path.basename(VM_STICK),
      close: () => must(`umount '${root}'`).then(() => undefined),
    };
  }
  if (name === "plain") {
    // A fresh ext4 with mkfs's defaults (so with a journal), not a folder of the host's disk: this
    // host's root ext4 has no journal, and without one ext4 skips every inode freed in the last
    // minute or more when it allocates a new one (ialloc.c, recently_deleted), so each candidate's
    // creates paid for the files the candidates before it had just deleted (docs/benchmarks.md).
    const image = `${work}/ext4.img`;
    fs.rmSync(image, { force: true });
    fs.mkdirSync(root, { recursive: true });
    await must(
      `truncate -s ${sizeGb}G '${image}' && mkfs.ext4 -q -F '${image}' && mount -o loop '${image}' '${root}'`,
    );
    return {
      name,
      root,
      device: await deviceOf(root),
      close: async () => {
        await must(`umount '${root}' || umount -l '${root}'`);
        fs.rmSync(image, { force: true });
        fs.rmdirSync(root);
      },
    };
  }
  const image = `${work}/exfat.img`;
  fs.rmSync(image, { force: true });
  await must(`truncate -s ${sizeGb}G '${image}' && mkfs.exfat -L BENCH '${image}' > /dev/null`);
  const m: ExfatMount = await mountExfatOnHost(image, root, { uid: 0, gid: 0 });
  return {
    name,
    root,
    device: path.basename(m.loopDevice),
    close: async () => {
      await unmountExfat(m);
      fs.rmSync(image, { force: true });
    },
  };
}

/**
 * `n` one-byte files straight on the lower in `dir`, 1,000 to a folder (d0/f0, d0/f1, …), and
 * the logs with their records.
 */
export async function fillMany(dir: string, n: number): Promise<void> {
  const per = 1000;
  fs.mkdirSync(dir);
  await must(
    `python3 -c 'import os\nfor d in range(${Math.ceil(n / per)}):\n os.mkdir(f"d{d}")\n for i in range(min(${per}, ${n} - d*${per})):\n  fd = os.open(f"d{d}/f{i}", os.O_CREAT|os.O_WRONLY); os.write(fd, b"x"); os.close(fd)'`,
    dir,
  );
  for (const name of fs.readdirSync(dir)) writeRecords(path.join(dir, name));
  writeRecords(dir);
}

/**
 * Gives every entry of a folder a record, in the log pershome would have written (docs/format.md):
 * a home made through pershome has one for each file and folder (mode, ns times, fingerprint),
 * and the daemon holds them once it has listed the folder. Made with the format module from
 * each entry's lstat, as the layer fingerprints it.
 */
function writeRecords(dir: string): void {
  const records: MetaRecord[] = [];
  for (const name of fs.readdirSync(dir)) {
    const facts = factsOf(fs.lstatSync(path.join(dir, name), { bigint: true }));
    const t = facts.mtime;
    records.push(
      facts.isDir
        ? { name, kind: "d", mode: 0o755, mtime: t, ctime: t }
        : { name, kind: "f", mode: 0o644, mtime: t, ctime: t, fp: fingerprint(facts) },
    );
  }
  fs.writeFileSync(path.join(dir, META_SLOTS[0]), snapshotText(1, records));
}
