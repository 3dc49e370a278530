// A file fsync'd in a folder made since the mount keeps its long name through a pull (regression):
// Linux's vfat files a new folder's first sectors under the parent folder, so the layer's fsync
// of the file's folder (docs/format.md rule 4: the entry is new) did not write the part of a
// long name that lies in an earlier sector than the file's short entry (the file's own fsync
// writes only the short entry's sector). After a pull, on the stick mounted with `flush`, the
// first file was not found under its long name. Ten long names in a row, so that some straddle a
// sector boundary; each written and fsync'd through the layer, then the disk set offline.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { mtype } from "../../lab/sticks/index.js";
import { runOnTwoSticks } from "./pull-harness.js";

const work = mkdtempSync(join(tmpdir(), "pershome-vfat-names-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const NAMES = Array.from(
  { length: 10 },
  (_, i) => `a rather long file name that takes several entries ${i}.txt`,
);

const GUEST = `
fs.mkdirSync(m + "/n");
for (const name of ${JSON.stringify(NAMES)}) write(m + "/n/" + name, name);
fs.writeFileSync("/sys/block/" + dev.slice(5) + "/device/state", "offline\\n");
console.log("pulled");
`;

describe("long names fsync'd in a new folder on FAT32 (kernel vfat), then the stick pulled", () => {
  it("keeps every name", async () => {
    const sticks = await runOnTwoSticks(work, GUEST, { sizeMb: 40, timeoutMs: 600_000 });
    for (const { opts, image } of sticks)
      for (const name of NAMES) {
        const got = await mtype(image, `/pershome/n/${name}`).catch((e: unknown) => String(e));
        expect(String(got), `${opts}: ${name}`).toBe(name);
      }
  }, 660_000);
});
