// A confirmed save on FAT32 survives a pull (regression, found by the FAT32 torture): an
// editor's save (temp file, fsync, rename over the document, fsync of the folder) through the
// layer, then another file written and fsync'd, then the stick is gone at once (the micro-VM
// powers off without syncing). Linux's vfat writes a renamed file's start cluster and size only
// when the moved inode is written back, while the replaced file's clusters are freed in the FAT
// that the next fsync writes: the document was left pointing at free clusters (fsck.fat
// truncated it to 0 bytes). Also a rename to a new name, and both with and without vfat's
// `flush` option (the login hook mounts with it). And a batch: 40 files moved into a folder made
// since the mount, written together (the moved files' fsyncs go out several at once:
// src/native/fsync_many.c). One boot, two sticks.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { fsckFat, mtype } from "../../lab/sticks/index.js";
import { fatVerdict } from "../../lab/torture/vfat.js";
import { runOnTwoSticks } from "./pull-harness.js";

const work = mkdtempSync(join(tmpdir(), "pershome-vfat-rename-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const OLD = Buffer.alloc(300_000, "o");
const NEW = Buffer.alloc(70_000, "n");
const BATCH = 40;
const batchContent = (i: number): Buffer => Buffer.from(`file ${i} `.repeat(300 + i));

// Runs in the guest after GUEST_HEAD (stick and layer mounted): the saves, one more fsync'd file.
const GUEST = `
write(m + "/doc.odt", Buffer.alloc(${OLD.length}, "o"));
write(m + "/draft.txt", Buffer.alloc(${NEW.length}, "n"));
fs.mkdirSync(m + "/batch");
for (let i = 0; i < ${BATCH}; i++) write(m + "/batch/n" + i, Buffer.from(("file " + i + " ").repeat(300 + i)));
fsyncPath(m, C.O_RDONLY | C.O_DIRECTORY);
execFileSync("sync"); // the old versions are on the stick for sure
fs.mkdirSync(m + "/moved");
for (let i = 0; i < ${BATCH}; i++) fs.renameSync(m + "/batch/n" + i, m + "/moved/m" + i);
write(m + "/doc.odt.swp", Buffer.alloc(${NEW.length}, "n"));
fs.renameSync(m + "/doc.odt.swp", m + "/doc.odt");
fs.renameSync(m + "/draft.txt", m + "/final.txt");
fsyncPath(m, C.O_RDONLY | C.O_DIRECTORY);
write(m + "/other.txt", Buffer.alloc(5000, "x")); // its fsync writes the FAT
console.log("saved");
`;

describe("a save by rename on FAT32 (kernel vfat), then the stick pulled", () => {
  it("keeps the new content under the new name, and fsck.fat finds no damage", async () => {
    const sticks = await runOnTwoSticks(work, GUEST, { sizeMb: 64, timeoutMs: 600_000 });
    for (const { opts, image: img } of sticks) {
      const f = await fsckFat(img);
      expect(fatVerdict(f.exitCode, f.output), `${opts}:\n${f.output}`).not.toBe("damage");
      expect((await mtype(img, "/pershome/doc.odt")).equals(NEW), `${opts}: doc.odt`).toBe(true);
      expect((await mtype(img, "/pershome/final.txt")).equals(NEW), `${opts}: final.txt`).toBe(true);
      for (let i = 0; i < BATCH; i++)
        expect(
          (await mtype(img, `/pershome/moved/m${i}`)).equals(batchContent(i)),
          `${opts}: moved/m${i}`,
        ).toBe(true);
    }
  }, 660_000);
});
