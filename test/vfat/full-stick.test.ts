// A full FAT32 stick frees a removed file's space for the next write, also while the removed
// file's last close is still under way. The layer closes stored files on threads of their own
// (src/native/closer.c): with vfat's `flush` a close sleeps 0.1 s, and a removed file's clusters
// go only at its end. So the stick is filled through the layer (its last write gets ENOSPC),
// the big file closed behind 48 others and removed, and at once a small file written and
// fsync'd: its write gets ENOSPC from vfat, and the layer must let go of the removals held and
// wait for the closes under way (lower.ts, roomy) before it retries; then the stick is pulled.
// Without the wait for the closes the small write failed with ENOSPC on the `flush` stick
// (checked).

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { fsckFat, mtype } from "../../lab/sticks/index.js";
import { runOnTwoSticks } from "./pull-harness.js";

const work = mkdtempSync(join(tmpdir(), "pershome-vfat-full-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const SMALL = Buffer.alloc(64 * 1024, "c");

const GUEST = `
fs.mkdirSync(m + "/d");
write(m + "/d/keep", "kept");
// 48 small files kept open, written to; then the stick filled with one big file
const others = Array.from({ length: 48 }, (_, i) => fs.openSync(m + "/d/o" + i, C.O_WRONLY | C.O_CREAT, 0o644));
for (const fd of others) fs.writeSync(fd, "o");
const fd = fs.openSync(m + "/d/big.bin", C.O_WRONLY | C.O_CREAT, 0o644);
let filled = 0;
for (const chunk of [1 << 20, 4096]) {
  const buf = Buffer.alloc(chunk, "b");
  try { for (;;) filled += fs.writeSync(fd, buf); } catch (err) { if (err.code !== "ENOSPC") throw err; }
}
console.log("filled " + filled + " bytes");
// all closed, the big file last: its close waits behind theirs (with flush 0.1 s each, sixteen
// at a time), so its clusters are still taken when the small file comes
for (const o of others) fs.closeSync(o);
fs.closeSync(fd);
fs.unlinkSync(m + "/d/big.bin");
write(m + "/d/small.bin", Buffer.alloc(${SMALL.length}, "c"));
console.log("small written");
fs.writeFileSync("/sys/block/" + dev.slice(5) + "/device/state", "offline\\n");
`;

describe("a full FAT32 stick (kernel vfat), a big file removed, a small one written at once", () => {
  it("gives the removed file's space to the small file, which survives a pull", async () => {
    const sticks = await runOnTwoSticks(work, GUEST, { sizeMb: 40, timeoutMs: 600_000 });
    for (const { opts, image: img } of sticks) {
      expect((await mtype(img, "/pershome/d/small.bin")).equals(SMALL), `${opts}: small.bin`).toBe(true);
      expect((await mtype(img, "/pershome/d/keep")).toString(), `${opts}: keep`).toBe("kept");
      const f = await fsckFat(img);
      expect(f.output, `${opts}:\n${f.output}`).not.toMatch(/share clusters/);
    }
  }, 660_000);
});
