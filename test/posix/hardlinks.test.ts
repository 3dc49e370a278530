// Hard links: one inode under several names (docs/format.md "Special files": the data moves to
// .pershome/links/<id>, each name becomes a placeholder with a record).

import {
  appendFile,
  chmod,
  link,
  mkdir,
  readFile,
  readdir,
  rename,
  stat,
  unlink,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { rawNames, useLayer } from "../support/fixture.js";
import { lowerKinds } from "../support/lower.js";
import { pyStat } from "../support/sys.js";
import { existsSync } from "node:fs";

describe.each(lowerKinds())("hard links on a %s lower", (kind) => {
  const t = useLayer(kind, "hardlinks");

  it("shows two names of one file: same inode, link count 2, writes through one seen through the other", async () => {
    const d = await t.dir("pair");
    await writeFile(t.p(d, "a"), "first");
    await link(t.p(d, "a"), t.p(d, "b"));
    const [sa, sb] = [await stat(t.p(d, "a")), await stat(t.p(d, "b"))];
    expect(sa.ino).toBe(sb.ino);
    expect([sa.nlink, sb.nlink]).toEqual([2, 2]);
    await appendFile(t.p(d, "a"), " and more");
    expect(await readFile(t.p(d, "b"), "utf8")).toBe("first and more");
    expect((await stat(t.p(d, "b"))).size).toBe("first and more".length);
    await writeFile(t.p(d, "b"), "rewritten via b");
    expect(await readFile(t.p(d, "a"), "utf8")).toBe("rewritten via b");
  });

  it("is still one file with two names after a remount", async () => {
    const d = await t.dir("persist");
    await writeFile(t.p(d, "a"), "shared");
    await mkdir(t.p(d, "other"));
    await link(t.p(d, "a"), t.p(d, "other", "b:c"));
    await t.remount();
    const [sa, sb] = [await stat(t.p(d, "a")), await stat(t.p(d, "other", "b:c"))];
    expect(sa.ino).toBe(sb.ino);
    expect([sa.nlink, sb.nlink]).toEqual([2, 2]);
    await writeFile(t.p(d, "other", "b:c"), "changed after remount");
    expect(await readFile(t.p(d, "a"), "utf8")).toBe("changed after remount");
  });

  it("shares mode, times and content between names; chmod through one shows in the other", async () => {
    const d = await t.dir("mode");
    await writeFile(t.p(d, "a"), "x");
    await link(t.p(d, "a"), t.p(d, "b"));
    await chmod(t.p(d, "b"), 0o600);
    expect((await stat(t.p(d, "a"))).mode & 0o7777).toBe(0o600);
    await t.remount();
    expect((await stat(t.p(d, "a"))).mode & 0o7777).toBe(0o600);
    expect((await stat(t.p(d, "b"))).mode & 0o7777).toBe(0o600);
  });

  it("counts three names, and keeps the data when names are removed one by one", async () => {
    const d = await t.dir("three");
    await writeFile(t.p(d, "a"), "survivor");
    await link(t.p(d, "a"), t.p(d, "b"));
    await link(t.p(d, "a"), t.p(d, "c"));
    expect((await stat(t.p(d, "c"))).nlink).toBe(3);
    await unlink(t.p(d, "a"));
    expect((await stat(t.p(d, "b"))).nlink).toBe(2);
    await t.remount();
    expect((await stat(t.p(d, "c"))).nlink).toBe(2);
    await unlink(t.p(d, "b"));
    await t.remount();
    const sc = await stat(t.p(d, "c"));
    expect(sc.nlink).toBe(1);
    expect(await readFile(t.p(d, "c"), "utf8")).toBe("survivor");
    expect(await readdir(t.p(d))).toEqual(["c"]);
  });

  it("keeps the link when a name is renamed", async () => {
    const d = await t.dir("rename");
    await writeFile(t.p(d, "a"), "data");
    await link(t.p(d, "a"), t.p(d, "b"));
    await mkdir(t.p(d, "moved"));
    await rename(t.p(d, "b"), t.p(d, "moved", "B"));
    await t.remount();
    expect((await stat(t.p(d, "a"))).ino).toBe((await stat(t.p(d, "moved", "B"))).ino);
    expect((await stat(t.p(d, "a"))).nlink).toBe(2);
  });

  it("keeps the data in the stick's link store, and frees it when the last name goes", async () => {
    const d = await t.dir("store");
    await writeFile(t.p(d, "a"), "stored once");
    await link(t.p(d, "a"), t.p(d, "b"));
    await t.unmount();
    const linksDir = join(t.lower.dir, ".pershome", "links");
    const held = async (): Promise<string[]> => {
      if (!existsSync(linksDir)) return [];
      const out: string[] = [];
      for (const n of await rawNames(linksDir)) {
        const name = n.toString();
        if (name.startsWith(".pershome")) continue;
        if (
          /^[0-9a-f]{16,32}$/.test(name) &&
          (await readFile(join(linksDir, name), "utf8")) === "stored once"
        )
          out.push(name);
      }
      return out;
    };
    expect(await held(), "the data lives in .pershome/links/<id>").toHaveLength(1);
    // Each name is a small placeholder, not a second copy of the data.
    expect(await readFile(t.low(d, "a"), "utf8")).not.toBe("stored once");
    await t.mount();
    await unlink(t.p(d, "a"));
    await unlink(t.p(d, "b"));
    await t.unmount();
    expect(await held(), "no data left behind").toEqual([]);
    await t.mount();
  });

  it("link then unlink of the first name (how git stores an object) leaves a plain file on the stick", async () => {
    const d = await t.dir("git-object");
    await mkdir(t.p(d, "ab"));
    await writeFile(t.p(d, "ab", "tmp_obj_x1"), "blob 5\0hello", { mode: 0o444 });
    await link(t.p(d, "ab", "tmp_obj_x1"), t.p(d, "ab", "cdef01"));
    const during = await stat(t.p(d, "ab", "cdef01"));
    expect(during.nlink).toBe(2);
    await unlink(t.p(d, "ab", "tmp_obj_x1"));
    const after = await stat(t.p(d, "ab", "cdef01"));
    expect([after.ino, after.nlink, after.mode & 0o7777]).toEqual([during.ino, 1, 0o444]);
    expect(await readdir(t.p(d, "ab"))).toEqual(["cdef01"]);
    await t.unmount();
    // the data itself under the final name, readable anywhere; nothing in the link store
    expect(await readFile(t.low(d, "ab", "cdef01"), "utf8")).toBe("blob 5\0hello");
    expect(existsSync(t.low(d, "ab", "tmp_obj_x1"))).toBe(false);
    const linksDir = join(t.lower.dir, ".pershome", "links");
    const inStore: string[] = [];
    for (const n of existsSync(linksDir) ? await rawNames(linksDir) : []) {
      const data = await readFile(join(linksDir, n.toString()));
      if (data.toString() === "blob 5\0hello") inStore.push(n.toString());
    }
    expect(inStore, "a copy in .pershome/links").toEqual([]);
    await t.mount();
    const again = await stat(t.p(d, "ab", "cdef01"));
    expect([again.nlink, again.mode & 0o7777]).toEqual([1, 0o444]);
    expect(await readFile(t.p(d, "ab", "cdef01"), "utf8")).toBe("blob 5\0hello");
  });

  it("link then unlink of the new name leaves the file as it was", async () => {
    const d = await t.dir("undone");
    await writeFile(t.p(d, "a"), "kept");
    await link(t.p(d, "a"), t.p(d, "b"));
    await unlink(t.p(d, "b"));
    expect((await stat(t.p(d, "a"))).nlink).toBe(1);
    await t.remount();
    expect(await readdir(t.p(d))).toEqual(["a"]);
    expect(await readFile(t.low(d, "a"), "utf8")).toBe("kept");
  });

  it("a link left alone is made on the stick by the 2-second flush, without unmount", async () => {
    const d = await t.dir("flushed");
    await writeFile(t.p(d, "a"), "both names");
    await link(t.p(d, "a"), t.p(d, "b"));
    // the stick's own view, read while mounted: the names become placeholders
    const placeholder = async (): Promise<boolean> =>
      existsSync(t.low(d, "b")) && (await readFile(t.low(d, "a"), "utf8")).startsWith("pershome:");
    const deadline = Date.now() + 10_000;
    while (!(await placeholder()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(await placeholder()).toBe(true);
    expect(await readFile(t.p(d, "b"), "utf8")).toBe("both names");
  });

  it("refuses a hard link to a directory", async () => {
    const d = await t.dir("dir");
    await mkdir(t.p(d, "sub"));
    await expect(link(t.p(d, "sub"), t.p(d, "sub2"))).rejects.toMatchObject({ code: "EPERM" });
  });

  it("keeps a hard link whose names differ only in case", async () => {
    const d = await t.dir("case");
    await writeFile(t.p(d, "Data"), "one inode");
    await link(t.p(d, "Data"), t.p(d, "data"));
    await t.remount();
    expect((await readdir(t.p(d))).sort()).toEqual(["Data", "data"]);
    const [s1, s2] = [await pyStat(t.p(d, "Data")), await pyStat(t.p(d, "data"))];
    expect(s1.ino).toBe(s2.ino);
    expect(s1.nlink).toBe(2);
  });
});
