// A confirmed save on FAT32 survives a pull (regression, found by the FAT32 torture): an
// editor's save (temp file, fsync, rename over the document, fsync of the folder) through the
// layer, then another file written and fsync'd, then the stick is gone at once (the micro-VM
// powers off without syncing). Linux's vfat writes a renamed file's start cluster and size only
// when the moved inode is written back, while the replaced file's clusters are freed in the FAT
// that the next fsync writes: the document was left pointing at free clusters (fsck.fat
// truncated it to 0 bytes). Also a rename to a new name, and both with and without vfat's
// `flush` option (the login hook mounts with it). One boot, two sticks.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runInVm } from "../../lab/microvm/index.js";
import { fsckFat, makeFat32Stick, mtype } from "../../lab/sticks/index.js";
import { fatVerdict } from "../../lab/torture/vfat.js";
import { REPO } from "../support/mount.js";
import { tail } from "../support/run.js";

const work = mkdtempSync(join(tmpdir(), "pershome-vfat-rename-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const OLD = Buffer.alloc(300_000, "o");
const NEW = Buffer.alloc(70_000, "n");

// Runs in the guest: mount the stick and the layer, the saves, one more fsync'd file, exit.
const GUEST = `
import fs from "node:fs";
import { execFileSync } from "node:child_process";
const [cli, dev, opts, dir] = process.argv.slice(2);
const C = fs.constants;
for (const d of ["s", "m"]) fs.mkdirSync(dir + "/" + d, { recursive: true });
execFileSync("mount", ["-t", "vfat", "-o", opts, dev, dir + "/s"]);
fs.mkdirSync(dir + "/s/pershome");
execFileSync(process.execPath, [cli, "mount", dir + "/s/pershome", dir + "/m"]);
const m = dir + "/m";
const fsyncPath = (p, flags) => { const fd = fs.openSync(p, flags); fs.fsyncSync(fd); fs.closeSync(fd); };
const write = (p, data) => { const fd = fs.openSync(p, C.O_WRONLY | C.O_CREAT | C.O_TRUNC, 0o644); fs.writeSync(fd, data); fs.fsyncSync(fd); fs.closeSync(fd); };
write(m + "/doc.odt", Buffer.alloc(${OLD.length}, "o"));
write(m + "/draft.txt", Buffer.alloc(${NEW.length}, "n"));
fsyncPath(m, C.O_RDONLY | C.O_DIRECTORY);
execFileSync("sync"); // the old versions are on the stick for sure
write(m + "/doc.odt.swp", Buffer.alloc(${NEW.length}, "n"));
fs.renameSync(m + "/doc.odt.swp", m + "/doc.odt");
fs.renameSync(m + "/draft.txt", m + "/final.txt");
fsyncPath(m, C.O_RDONLY | C.O_DIRECTORY);
write(m + "/other.txt", Buffer.alloc(5000, "x")); // its fsync writes the FAT
console.log("saved");
`;

describe("a save by rename on FAT32 (kernel vfat), then the stick pulled", () => {
  it("keeps the new content under the new name, and fsck.fat finds no damage", async () => {
    writeFileSync(join(work, "guest.mjs"), GUEST);
    const sticks = ["utf8,shortname=mixed", "utf8,shortname=mixed,flush"];
    const images = await Promise.all(sticks.map((_, i) => makeFat32Stick(join(work, `s${i}.img`), 64)));
    const cli = join(REPO, "dist/src/cli/main.js");
    const r = await runInVm({
      command: sticks
        .map((o, i) => `node /w/guest.mjs ${cli} /dev/sd${"ab"[i]} ${o} /run/t${i}`)
        .join(" && "),
      sticks: images.map((image) => ({ image })),
      shares: [{ hostPath: work, guestPath: "/w", readOnly: true }],
      cwd: REPO,
      timeoutMs: 180_000,
    });
    expect(r.exitCode, tail(r.output, 4000)).toBe(0);
    for (const [i, img] of images.entries()) {
      const f = await fsckFat(img);
      expect(fatVerdict(f.exitCode, f.output), `${sticks[i]}:\n${f.output}`).not.toBe("damage");
      expect((await mtype(img, "/pershome/doc.odt")).equals(NEW), `${sticks[i]}: doc.odt`).toBe(true);
      expect((await mtype(img, "/pershome/final.txt")).equals(NEW), `${sticks[i]}: final.txt`).toBe(true);
    }
  }, 200_000);
});
