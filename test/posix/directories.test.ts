// Directories: create, list, remove, including directories that hold only the layer's own
// metadata (which must not make them "not empty").

import { chmod, lstat, mkdir, readdir, rm, rmdir, utimes, writeFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { useLayer } from "../support/fixture.js";
import { lowerKinds } from "../support/lower.js";
import { requestsSinceLast } from "../support/mount.js";
import { python } from "../support/run.js";
import { traceDuring } from "../support/strace.js";
import { errnoOf, sys } from "../support/sys.js";

describe.each(lowerKinds())("directories on a %s lower", (kind) => {
  const t = useLayer(kind, "dirs");

  it("makes nested directories and lists them; EEXIST on a second mkdir", async () => {
    const d = await t.dir("mk");
    await mkdir(t.p(d, "a", "b", "c"), { recursive: true });
    expect(await readdir(t.p(d, "a", "b"))).toEqual(["c"]);
    await expect(mkdir(t.p(d, "a"))).rejects.toMatchObject({ code: "EEXIST" });
  });

  it("refuses to remove a non-empty directory (ENOTEMPTY) and removes an empty one", async () => {
    const d = await t.dir("rm");
    await mkdir(t.p(d, "full"));
    await writeFile(t.p(d, "full", "x"), "x");
    expect(await errnoOf("rmdir", t.p(d, "full"))).toBe("ENOTEMPTY");
    await rm(t.p(d, "full", "x"));
    await rmdir(t.p(d, "full"));
    expect(await readdir(t.p(d))).toEqual([]);
  });

  it("removes a directory whose only content is the layer's metadata log", async () => {
    const d = await t.dir("meta-only");
    await mkdir(t.p(d, "sub"));
    await writeFile(t.p(d, "sub", "key"), "k");
    await chmod(t.p(d, "sub", "key"), 0o600);
    await sys("setxattr", t.p(d, "sub", "key"), "user.x", "1");
    await t.remount(); // the log is surely on the stick now
    await rm(t.p(d, "sub", "key"));
    await rmdir(t.p(d, "sub"));
    expect(await readdir(t.p(d))).toEqual([]);
    await t.remount();
    expect(await readdir(t.p(d))).toEqual([]);
  });

  it("removes a directory that held special files and hard links", async () => {
    const d = await t.dir("special-rm");
    await mkdir(t.p(d, "sub"));
    await sys("mkfifo", t.p(d, "sub", "p"), 0o644);
    await sys("symlink", "x", t.p(d, "sub", "l"));
    await writeFile(t.p(d, "sub", "a"), "a");
    await sys("link", t.p(d, "sub", "a"), t.p(d, "sub", "b"));
    await t.remount();
    await rm(t.p(d, "sub"), { recursive: true });
    expect(await readdir(t.p(d))).toEqual([]);
  });

  it("lists 2000 entries completely, with readdir paging, before and after a remount", async () => {
    const d = await t.dir("many");
    const r = await python(
      `import os, sys
d = sys.argv[1]
for i in range(2000):
    open(os.path.join(d, "entry-%04d:x" % i), "w").close()`,
      [t.p(d)],
      { timeoutMs: 240_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    const want = Array.from({ length: 2000 }, (_, i) => `entry-${String(i).padStart(4, "0")}:x`);
    expect((await readdir(t.p(d))).sort()).toEqual(want);
    await t.remount();
    expect((await readdir(t.p(d))).sort()).toEqual(want);
  }, 300_000);

  it("never asks the stick for a log slot that is not there: new folders, first logs, removal", async () => {
    // each miss is a round trip to exfat-fuse (and a folder scan on vfat)
    const d = await t.dir("slots");
    const trace = await traceDuring(
      t.layer.pid,
      ["open", "openat", "unlink", "unlinkat"],
      t.lower.work,
      async () => {
        for (let i = 0; i < 10; i++) {
          await mkdir(t.p(d, `s${i}`));
          await writeFile(t.p(d, `s${i}`, "f"), "x");
          await chmod(t.p(d, `s${i}`, "f"), 0o600);
          expect(await errnoOf("fsync", t.p(d, `s${i}`)), "the folder's first log, durable").toBe("OK");
        }
        for (let i = 0; i < 10; i++) await rm(t.p(d, `s${i}`), { recursive: true });
      },
    );
    const missed = trace.lines.filter((l) => l.includes(".pershome.meta.") && /= -1 ENOENT/.test(l));
    expect(missed, missed.join("\n")).toEqual([]);
    const removed = trace.matching(/^unlink/, ".pershome.meta.").filter((l) => /\/s\d\/\.pershome/.test(l));
    expect(removed.length, "each folder's log removed with it").toBe(10);
    expect(await readdir(t.p(d))).toEqual([]);
  });

  it("lists files just written with their new sizes and times, without a getattr per file", async () => {
    // A write makes the kernel let go of the file's size and times; the listing (readdirplus)
    // brings them back, so `ls -l` after saving files is one request per batch, not per file.
    await t.unmount();
    const layer = await t.mount({ env: { PERSHOME_FUSE_COUNTS: "1" } });
    const d = await t.dir("written");
    const N = 40;
    for (let i = 0; i < N; i++) await writeFile(t.p(d, `f${i}`), "x");
    for (let i = 0; i < N; i++) await writeFile(t.p(d, `f${i}`), "y".repeat(i + 1), { flag: "a" });
    await utimes(t.p(d, "f7"), 1_600_000_000, 1_600_000_000);
    const getattrs = async (): Promise<number> => (await requestsSinceLast(layer)).getattr ?? 0;
    await getattrs();
    const sizes = new Map<string, number>();
    for (const name of await readdir(t.p(d))) sizes.set(name, (await lstat(t.p(d, name))).size);
    expect(await getattrs(), "getattr requests for the listing and its lstats").toBeLessThan(5);
    expect(sizes.size).toBe(N);
    for (let i = 0; i < N; i++) expect(sizes.get(`f${i}`), `f${i}`).toBe(i + 2);
    expect((await lstat(t.p(d, "f7"))).mtimeMs).toBe(1_600_000_000_000);
  });
});
