// Removals on FAT32 survive a pull without harming a synced file (regression, found by the
// FAT32 torture): Linux's vfat frees a removed file's clusters in the FAT as soon as its inode
// goes (unlink, rmdir, a truncation), but writes the folder's entry (or the truncated file's
// start cluster and size) only when that folder (or file) is written back. Any fsync writes the
// FAT, so a file written and fsync'd next can take those clusters while the stick still has the
// old entry pointing at them: after a pull fsck.fat finds both on the same clusters and
// truncates one of them. Here each case sits in its own folder (so that no other write of that
// folder takes its entry along), the stick is full but for a small spare area (so vfat, which
// allocates onwards and wraps round, hands the freed clusters out first), a new file is written
// and fsync'd, and the disk is set offline in the guest at once (a pull: nothing the page cache
// still holds reaches the image; the VM merely exiting is not, as the next stick's run gives
// the guest's writeback time). Before the fix fsck.fat found `t/cut.bin` and `b/new.bin`
// sharing clusters and new.bin cut to 199,680 bytes. With and without vfat's `flush` option
// (the login hook mounts with it). One boot, two sticks.
//
// Before the second fix the removals in folders made since the mount were not written at all
// (fsck.fat: "/pershome/u/old.bin Contains a free cluster"): vfat files a new folder's first
// sectors under its parent, so the layer's fsync of the folder missed them (src/fs/lower.ts,
// fsyncDir). Two more cases: a folder removed (`r/sub`) or moved away (`q/sub`) while removals
// in it are held, then a new folder made under its path, whose file is then removed: that
// removal must be written to the new folder, not through the old folder's descriptor (the
// layer kept one per path until the removals settled; `r/sub` failed so on a build with only
// the first part of the fix). `q/sub` passes either way: the folder's own rename settles the
// removals held; it stays as the moved-away case.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { fsckFat, mtype } from "../../lab/sticks/index.js";
import { runOnTwoSticks } from "./pull-harness.js";

const work = mkdtempSync(join(tmpdir(), "pershome-vfat-unlink-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const NEW = Buffer.alloc(700_000, "n");

// Runs in the guest: the old files (synced), the stick filled, the removals (not synced), the
// new file (fsync'd), exit.
const GUEST = `
for (const d of ["u", "t", "o", "d", "d/sub", "b", "r", "r/sub", "q", "q/sub"]) fs.mkdirSync(m + "/" + d);
for (const p of ["r/sub/g", "q/sub/g"]) write(m + "/" + p, Buffer.alloc(30_000, "g"));
fs.mkdirSync(m + "/k");
for (let i = 0; i < 12; i++) write(m + "/k/k" + i, "k");
write(m + "/u/old.bin", Buffer.alloc(200_000, "u"));
write(m + "/t/cut.bin", Buffer.alloc(200_000, "t"));
write(m + "/o/otrunc.bin", Buffer.alloc(200_000, "o"));
write(m + "/d/sub/f", Buffer.alloc(40_000, "f"));
execFileSync("sync");
// the rest of the stick filled outside the layer, but for a 1 MiB spare area
write(s + "/spare", Buffer.alloc(1 << 20, "s"));
const fd = fs.openSync(s + "/filler", C.O_WRONLY | C.O_CREAT, 0o644);
for (const chunk of [1 << 20, 4096, 512]) {
  const buf = Buffer.alloc(chunk, "z");
  try { for (;;) fs.writeSync(fd, buf); } catch (err) { if (err.code !== "ENOSPC") throw err; }
}
fs.fsyncSync(fd);
fs.closeSync(fd);
fs.unlinkSync(s + "/spare");
execFileSync("sync");
// through the layer, none of it synced
// a new folder under the path of one removed, or moved away, with its removals held; tick()
// removes one more file so that the layer's 2-second flush, which settles removals once they
// pause for a second, does not settle them in between
let ticks = 0;
const tick = () => fs.unlinkSync(m + "/k/k" + ticks++);
// h in a new folder, its entry and clusters on the stick as the kernel's writeback would put
// them (not through the layer: an fsync there would settle the removals held so far; the
// parent first, so that the new folder's sectors are its own: lower.ts, fsyncDir), removed
const newFolderWithH = (d) => {
  fs.mkdirSync(m + "/" + d);
  fs.writeFileSync(m + "/" + d + "/h", Buffer.alloc(30_000, "h"));
  tick();
  fsyncPath(s + "/pershome/" + d.split("/")[0], C.O_RDONLY | C.O_DIRECTORY);
  tick();
  fsyncPath(s + "/pershome/" + d + "/h", C.O_RDONLY);
  tick();
  fsyncPath(s + "/pershome/" + d, C.O_RDONLY | C.O_DIRECTORY);
  tick();
  fs.unlinkSync(m + "/" + d + "/h");
};
fs.unlinkSync(m + "/r/sub/g");
fs.rmdirSync(m + "/r/sub");
newFolderWithH("r/sub");
fs.unlinkSync(m + "/q/sub/g");
fs.renameSync(m + "/q/sub", m + "/q/old");
newFolderWithH("q/sub");
fs.unlinkSync(m + "/u/old.bin");
fs.truncateSync(m + "/t/cut.bin", 0);
fs.writeFileSync(m + "/o/otrunc.bin", "x"); // O_TRUNC
fs.unlinkSync(m + "/d/sub/f");
fs.rmdirSync(m + "/d/sub");
write(m + "/b/new.bin", Buffer.alloc(${NEW.length}, "n")); // its fsync writes the FAT
// the pull: the disk goes offline at once, whatever the page cache still holds never reaches it
fs.writeFileSync("/sys/block/" + dev.slice(5) + "/device/state", "offline\\n");
console.log("pulled");
`;

describe("removals on FAT32 (kernel vfat), a synced file written next, then the stick pulled", () => {
  it("leaves the synced file intact, sharing no clusters with a removed one", async () => {
    const sticks = await runOnTwoSticks(work, GUEST, { sizeMb: 40, timeoutMs: 600_000 });
    for (const { opts, image: img } of sticks) {
      const f = await fsckFat(img);
      // fsck.fat says "<a> and <b> share clusters" for a cross-link; other findings are the
      // pull's ordinary leftovers (unsynced writes), which nothing promised
      expect(f.output, `${opts}:\n${f.output}`).not.toMatch(/share clusters/);
      expect((await mtype(img, "/pershome/b/new.bin")).equals(NEW), `${opts}: new.bin`).toBe(true);
      // no removed file or folder left on the stick on clusters the FAT says are free: the
      // removals reached the stick before the space was let go (u/old.bin and d/sub did not
      // before the layer fsync'd each folder's parent too: the folders are new, see lower.ts)
      expect(f.output, `${opts}:\n${f.output}`).not.toMatch(/Contains a free cluster/);
      // the removed h in a new folder: gone from the stick, or still whole
      expect(f.output, `${opts}:\n${f.output}`).not.toMatch(/sub\/h/);
    }
  }, 660_000);
});
