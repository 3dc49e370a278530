// A first hard link is answered at once and made on the stick before the next request
// (src/fs/ops/links.ts). When the stick then refuses it (here: full, no room for a new file),
// the next fsync of the file or of the new name's folder must fail with that error, as a failed
// writeback does: an fsync that succeeds promises the link is on the stick. The name the kernel
// still shows can be removed, and the link made again once there is room; left alone, it is
// gone once the kernel asks again (PENDING_LINK_TIMEOUT), and a file made under that name then
// is a new file, not the linked one.

import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { link, readFile, readdir, stat, unlink, writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { useLayer } from "../support/fixture.js";
import { mustRun } from "../support/run.js";
import { errnoOf } from "../support/sys.js";
import { PENDING_LINK_TIMEOUT } from "../../src/fs/ops/links.js";

describe("a first hard link the stick has no room for (plain lower on a small tmpfs)", () => {
  const t = useLayer("plain", "lostlink", { noMount: true });

  it("fails the next fsync of its folder with the stick's error, once; the name can go and come back", async () => {
    // few inodes: a new file on the stick is what runs out
    await mustRun("mount", ["-t", "tmpfs", "-o", "size=8m,nr_inodes=400", "tmpfs", t.lower.dir]);
    try {
      await t.mount();
      const d = await t.dir("pair");
      await writeFile(t.p(d, "a"), "kept");
      expect(await errnoOf("fsync", t.p(d, "a"))).toBe("OK");
      expect(await errnoOf("fsync", t.p(d))).toBe("OK");

      const filler = t.low("filler");
      mkdirSync(filler);
      try {
        for (let n = 0; ; n++) writeFileSync(join(filler, `f${n}`), "");
      } catch (err) {
        if ((err as { code?: string }).code !== "ENOSPC") throw err;
      }

      await link(t.p(d, "a"), t.p(d, "b")); // answered before the stick is asked
      expect(await errnoOf("fsync", t.p(d)), "the fsync after the link").toBe("ENOSPC");
      expect(t.layer.stderr()).toContain("could not make the hard link");
      expect(await errnoOf("fsync", t.p(d)), "reported once").toBe("OK");
      expect(await readFile(t.p(d, "a"), "utf8")).toBe("kept");

      await unlink(t.p(d, "b")); // the name the kernel still held
      expect((await readdir(t.p(d))).sort()).toEqual(["a"]);

      // refused again, and this time left alone: the kernel lets the name go when it asks again
      await link(t.p(d, "a"), t.p(d, "c"));
      expect(await errnoOf("fsync", t.p(d)), "the fsync after the second link").toBe("ENOSPC");
      await sleep(PENDING_LINK_TIMEOUT * 1000 + 300);
      expect(await errnoOf("stat", t.p(d, "c")), "the refused name, a while later").toBe("ENOENT");
      expect((await stat(t.p(d, "a"))).nlink).toBe(1);
      rmSync(filler, { recursive: true });
      await writeFile(t.p(d, "c"), "new", { flag: "wx" }); // a new file, not "a" again
      expect(await readFile(t.p(d, "a"), "utf8")).toBe("kept");
      expect(await readFile(t.p(d, "c"), "utf8")).toBe("new");
      await unlink(t.p(d, "c"));

      await link(t.p(d, "a"), t.p(d, "b"));
      expect(await errnoOf("fsync", t.p(d))).toBe("OK");
      await t.remount();
      const [sa, sb] = [await stat(t.p(d, "a")), await stat(t.p(d, "b"))];
      expect(sb.ino).toBe(sa.ino);
      expect([sa.nlink, sb.nlink]).toEqual([2, 2]);
      expect(await readFile(t.p(d, "b"), "utf8")).toBe("kept");
    } finally {
      if (t.mounted()) await t.unmount();
      await mustRun("umount", [t.lower.dir]);
    }
  });
});
