// Host-side stick helpers: FAT32 via mtools/fsck.fat, exFAT mounted through a loop device and exfat-fuse.
import { execFileSync } from "node:child_process";
import {
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  fsckExfat,
  fsckFat,
  makeExfatStick,
  makeFat32Stick,
  mcopyFrom,
  mcopyTo,
  mdirNames,
  mexists,
  mmd,
  mountExfatOnHost,
  mtype,
  unmountExfat,
} from "../../lab/sticks/index.js";

const dir = mkdtempSync(join(tmpdir(), "sticks-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const NAME = "héllo wörld.txt";

describe("FAT32 sticks on the host", () => {
  it("round-trips a non-ASCII name through mtools and fsck.fat sees a clean volume", async () => {
    const img = await makeFat32Stick(join(dir, "fat.img"), 40);
    expect(statSync(img).size).toBe(40 * 1024 * 1024);
    const src = join(dir, "src.txt");
    writeFileSync(src, "contënt\n");
    await mmd(img, "/pershome");
    await mcopyTo(img, src, `/pershome/${NAME}`);
    expect(await mdirNames(img, "/pershome")).toEqual([NAME]);
    expect(await mexists(img, `/pershome/${NAME}`)).toBe(true);
    expect(await mexists(img, "/pershome/missing")).toBe(false);
    expect((await mtype(img, `/pershome/${NAME}`)).toString()).toBe("contënt\n");
    const back = join(dir, "back.txt");
    await mcopyFrom(img, `/pershome/${NAME}`, back);
    expect(readFileSync(back, "utf8")).toBe("contënt\n");
    const fsck = await fsckFat(img);
    expect(fsck.clean, fsck.output).toBe(true);
  });

  it("fsck.fat -n reports a damaged FAT", async () => {
    const img = await makeFat32Stick(join(dir, "bad.img"), 40);
    await mmd(img, "/d");
    // Scribble over the first FAT (it starts after the reserved sectors) so it disagrees with the second.
    const buf = readFileSync(img);
    const reserved = buf.readUInt16LE(14) * buf.readUInt16LE(11);
    const fd = openSync(img, "r+");
    writeSync(fd, Buffer.alloc(64, 0x5a), 0, 64, reserved + 8);
    closeSync(fd);
    const fsck = await fsckFat(img);
    expect(fsck.clean).toBe(false);
    expect(fsck.output.length).toBeGreaterThan(0);
  });

  it("refuses labels FAT cannot hold", async () => {
    await expect(makeFat32Stick(join(dir, "x.img"), 40, "lower")).rejects.toThrow(/bad FAT label/);
  });
});

describe("exFAT sticks mounted on the host", () => {
  it(
    "round-trips a file through losetup + exfat-fuse and cleans up the loop device",
    { timeout: 60_000 },
    async () => {
      const img = await makeExfatStick(join(dir, "ex.img"), 64);
      const mnt = join(dir, "mnt");
      const m = await mountExfatOnHost(img, mnt, { uid: 1234, gid: 2345 });
      try {
        expect(m.loopDevice).toMatch(/^\/dev\/loop\d+$/);
        writeFileSync(join(mnt, NAME), "exfat contënt\n");
        expect(statSync(join(mnt, NAME)).uid).toBe(1234);
        expect(statSync(join(mnt, NAME)).gid).toBe(2345);
      } finally {
        await unmountExfat(m);
      }
      expect(readdirSync(mnt)).toEqual([]); // unmounted
      const loops = execFileSync("losetup", ["-a"], { encoding: "utf8" });
      expect(loops).not.toContain(img);
      expect((await fsckExfat(img)).clean).toBe(true);

      const again = await mountExfatOnHost(img, mnt, { uid: 0, gid: 0 });
      try {
        expect(readdirSync(mnt)).toEqual([NAME]);
        expect(readFileSync(join(mnt, NAME), "utf8")).toBe("exfat contënt\n");
      } finally {
        await unmountExfat(again);
      }
    },
  );
});
