// statfs(2) on the mount reports the stick's size and free space (df shows the stick).

import { unlink } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { useLayer } from "../support/fixture.js";
import { lowerKinds } from "../support/lower.js";
import { python } from "../support/run.js";
import { sys } from "../support/sys.js";

interface Vfs {
  f_bsize: number;
  f_frsize: number;
  f_blocks: number;
  f_bfree: number;
  f_bavail: number;
  f_namemax: number;
}
const vfs = async (p: string): Promise<Vfs> => (await sys("statvfs", p)) as Vfs;
const total = (s: Vfs): number => s.f_blocks * s.f_frsize;
const avail = (s: Vfs): number => s.f_bavail * s.f_frsize;
const MiB = 1024 * 1024;

describe.each(lowerKinds())("statfs on a %s lower", (kind) => {
  const t = useLayer(kind, "statfs", { sizeMb: 256 });
  // The host's own disk (the plain lower) changes under other processes: allow more slack there.
  const slack = kind === "plain" ? 256 * MiB : 2 * MiB;

  it("reports the stick's total size and free space", async () => {
    const [m, l] = [await vfs(t.mnt), await vfs(t.lower.dir)];
    expect(total(m)).toBe(total(l));
    expect(Math.abs(avail(m) - avail(l))).toBeLessThanOrEqual(slack);
    expect(m.f_blocks).toBeGreaterThan(0);
  });

  it("reports a name limit of 255", async () => {
    expect((await vfs(t.mnt)).f_namemax).toBe(255);
  });

  // (not on plain: the host disk's free space moves by itself)
  it.skipIf(kind === "plain")(
    "shows free space shrink by what was written and grow back when it is removed",
    async () => {
      const d = await t.dir("fill");
      const before = avail(await vfs(t.mnt));
      const r = await python(
        `import os, sys
with open(sys.argv[1], "wb") as f:
    for _ in range(32): f.write(os.urandom(1 << 20))
    f.flush(); os.fsync(f.fileno())`,
        [t.p(d, "fill.bin")],
        { timeoutMs: 120_000 },
      );
      expect(r.code, r.stderr).toBe(0);
      const during = avail(await vfs(t.mnt));
      expect(before - during).toBeGreaterThanOrEqual(31 * MiB);
      expect(before - during).toBeLessThanOrEqual(34 * MiB);
      await unlink(t.p(d, "fill.bin"));
      await python("import os, sys; os.sync()", []);
      const after = avail(await vfs(t.mnt));
      expect(Math.abs(after - before)).toBeLessThanOrEqual(2 * MiB);
    },
    180_000,
  );
});
