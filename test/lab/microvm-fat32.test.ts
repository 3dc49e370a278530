// The point of the micro-VM: the real kernel vfat driver, on a virtual USB stick.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runInVm } from "../../lab/microvm/index.js";
import { shQuote } from "../../lab/microvm/shell.js";
import { fsckFat, makeFat32Stick, mdir, mdirNames, mtype } from "../../lab/sticks/index.js";

const dir = mkdtempSync(join(tmpdir(), "microvm-fat32-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("FAT32 stick in the micro-VM", () => {
  it(
    "the guest's vfat driver writes a non-ASCII name the host reads back, and fsck is clean",
    { timeout: 300_000 },
    async () => {
      const img = await makeFat32Stick(join(dir, "stick.img"), 64);
      const name = "héllo wörld.txt";
      const content = "Grüße aus dem Gast — ✓\n";
      const logFile = join(dir, "guest.log");
      const r = await runInVm({
        sticks: [{ image: img }],
        logFile,
        timeoutMs: 240_000,
        command: [
          "set -e",
          "mount -t vfat -o utf8,shortname=mixed,flush /dev/sda /mnt",
          "mkdir /mnt/pershome",
          `printf %s ${shQuote(content)} > /mnt/pershome/${shQuote(name)}`,
          "ls /mnt/pershome",
          "sync",
          "umount /mnt",
          "echo guest-done",
        ].join("\n"),
      });
      expect(r.exitCode, r.output).toBe(0);
      expect(r.output).toContain(name);
      expect(r.output).toContain("guest-done");
      expect(readFileSync(logFile, "utf8")).toBe(r.output);
      expect(r.bootMs).toBeGreaterThan(0);

      expect(await mdirNames(img, "/")).toEqual(["pershome"]);
      expect(await mdirNames(img, "/pershome")).toEqual([name]);
      expect(await mdir(img, "/pershome")).toContain(name);
      expect((await mtype(img, `/pershome/${name}`)).toString("utf8")).toBe(content);
      const fsck = await fsckFat(img);
      expect(fsck.clean, fsck.output).toBe(true);
    },
  );
});
