// Any Linux name works on the mount, is stored on the stick under the encoded name
// docs/format.md prescribes ("Names"), and reads back as the user's name after a remount.

import { chmod, mkdir, readFile, readdir, rename, stat, unlink, writeFile } from "node:fs/promises";
import { beforeAll, describe, expect, it } from "vitest";
import { rawNames, useLayer } from "../support/fixture.js";
import { lowerKinds } from "../support/lower.js";
import {
  ENCODED_NAMES,
  TWIN,
  bpath,
  isReserved,
  pua,
  show,
  showBytes,
  type NameCase,
} from "../support/names.js";

/** The user-visible (non-reserved) names the lower holds in `dir`, as the lower's readdir shows them. */
async function storedNames(dir: string): Promise<string[]> {
  return (await rawNames(dir)).map((b) => b.toString("utf8")).filter((n) => !isReserved(n));
}

const errCode = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? String(e);

describe.each(lowerKinds())("names on a %s lower", (kind) => {
  const t = useLayer(kind, "names");

  describe("a name FAT cannot hold", () => {
    const cases = ENCODED_NAMES.filter((c) => !c.notOn?.includes(kind));
    interface Seen {
      dir: string;
      created: string;
      listedBefore: string[];
      storedAs: string[];
      listedAfter: string[];
      contentAfter: string;
    }
    const seen = new Map<NameCase, Seen>();

    // One directory per name; one unmount and remount for all of them.
    beforeAll(async () => {
      for (const c of cases) {
        const dir = await t.dir("name");
        let created = "OK";
        try {
          await writeFile(bpath(t.p(dir), c.user), c.why);
        } catch (e) {
          created = errCode(e);
        }
        const listedBefore = (await rawNames(t.p(dir))).map(showBytes);
        seen.set(c, { dir, created, listedBefore, storedAs: [], listedAfter: [], contentAfter: "" });
      }
      await t.unmount();
      for (const s of seen.values()) s.storedAs = (await storedNames(t.low(s.dir))).map(show);
      await t.lower.detach();
      await t.lower.attach();
      await t.mount();
      for (const [c, s] of seen) {
        s.listedAfter = (await rawNames(t.p(s.dir))).map(showBytes);
        s.contentAfter = await readFile(bpath(t.p(s.dir), c.user), "utf8").catch(
          (e: unknown) => `<${errCode(e)}>`,
        );
      }
    }, 300_000);

    it.each(cases)("$why: created, stored encoded, shown back after remount", (c) => {
      const s = seen.get(c)!;
      expect(s.created, "create on the mount").toBe("OK");
      expect(s.listedBefore, "listing on the mount").toEqual([showBytes(c.user)]);
      expect(s.storedAs, "name on the stick").toEqual([show(c.stored)]);
      expect(s.listedAfter, "listing after remount").toEqual([showBytes(c.user)]);
      expect(s.contentAfter, "content after remount").toBe(c.why);
    });
  });

  it("keeps Makefile and makefile (and MAKEFILE) as separate files with their own content", async () => {
    const d = await t.dir("twins");
    await writeFile(t.p(d, "Makefile"), "first\n");
    await writeFile(t.p(d, "makefile"), "second\n");
    await writeFile(t.p(d, "MAKEFILE"), "third\n");
    const check = async (when: string): Promise<void> => {
      expect((await readdir(t.p(d))).sort(), when).toEqual(["MAKEFILE", "Makefile", "makefile"]);
      expect(await readFile(t.p(d, "Makefile"), "utf8"), when).toBe("first\n");
      expect(await readFile(t.p(d, "makefile"), "utf8"), when).toBe("second\n");
      expect(await readFile(t.p(d, "MAKEFILE"), "utf8"), when).toBe("third\n");
    };
    await check("while mounted");
    await t.unmount();
    // The first name keeps its plain spelling; each further twin gets one more U+F0FE.
    expect((await storedNames(t.low(d))).map(show).sort()).toEqual(
      ["Makefile", `makefile${TWIN}`, `MAKEFILE${TWIN}${TWIN}`].map(show).sort(),
    );
    await t.remount();
    await check("after remount");
  });

  it("stores a case twin made after a remount (the folder read back from the stick) apart too", async () => {
    const d = await t.dir("twin-later");
    await writeFile(t.p(d, "Makefile"), "first\n");
    await writeFile(t.p(d, "makefile"), "second\n");
    await t.remount();
    await writeFile(t.p(d, "MAKEFILE"), "third\n");
    await t.unmount();
    // both earlier spellings are taken on the stick, the twin's too
    expect((await storedNames(t.low(d))).map(show).sort()).toEqual(
      ["Makefile", `makefile${TWIN}`, `MAKEFILE${TWIN}${TWIN}`].map(show).sort(),
    );
    await t.remount();
    expect(await readFile(t.p(d, "Makefile"), "utf8")).toBe("first\n");
    expect(await readFile(t.p(d, "makefile"), "utf8")).toBe("second\n");
    expect(await readFile(t.p(d, "MAKEFILE"), "utf8")).toBe("third\n");
  });

  it("looks names up with case: Readme exists, README and readme do not", async () => {
    const d = await t.dir("case-lookup");
    await writeFile(t.p(d, "Readme"), "x");
    await expect(stat(t.p(d, "README"))).rejects.toMatchObject({ code: "ENOENT" });
    await expect(stat(t.p(d, "readme"))).rejects.toMatchObject({ code: "ENOENT" });
    // O_EXCL on a case twin makes a new file rather than failing on the stick's folded name.
    await writeFile(t.p(d, "readme"), "y", { flag: "wx" });
    expect(await readFile(t.p(d, "Readme"), "utf8")).toBe("x");
    expect(await readFile(t.p(d, "readme"), "utf8")).toBe("y");
  });

  it("removes one case twin without touching the other, and the name can be made again", async () => {
    const d = await t.dir("twin-rm");
    await writeFile(t.p(d, "Notes"), "upper");
    await writeFile(t.p(d, "notes"), "lower");
    await unlink(t.p(d, "Notes"));
    expect(await readdir(t.p(d))).toEqual(["notes"]);
    expect(await readFile(t.p(d, "notes"), "utf8")).toBe("lower");
    await writeFile(t.p(d, "Notes"), "again");
    await t.remount();
    expect((await readdir(t.p(d))).sort()).toEqual(["Notes", "notes"]);
    expect(await readFile(t.p(d, "Notes"), "utf8")).toBe("again");
    expect(await readFile(t.p(d, "notes"), "utf8")).toBe("lower");
  });

  it("renames a file and a folder to a different case of their own names, modes kept", async () => {
    const d = await t.dir("case-rename");
    await writeFile(t.p(d, "readme.md"), "content");
    await chmod(t.p(d, "readme.md"), 0o600);
    await mkdir(t.p(d, "mail"), 0o700);
    await rename(t.p(d, "readme.md"), t.p(d, "README.md"));
    await rename(t.p(d, "mail"), t.p(d, "Mail"));
    expect((await readdir(t.p(d))).sort()).toEqual(["Mail", "README.md"]);
    await t.remount();
    expect((await readdir(t.p(d))).sort()).toEqual(["Mail", "README.md"]);
    expect(await readFile(t.p(d, "README.md"), "utf8")).toBe("content");
    // the stepping-stone name's record (docs/format.md, rule 8) is gone, the modes stayed
    expect((await stat(t.p(d, "README.md"))).mode & 0o7777).toBe(0o600);
    expect((await stat(t.p(d, "Mail"))).mode & 0o7777).toBe(0o700);
  });

  it("renames between encoded names and removes them", async () => {
    const d = await t.dir("enc-rename");
    await writeFile(t.p(d, "a:b"), "1");
    await rename(t.p(d, "a:b"), t.p(d, "c?d."));
    await writeFile(t.p(d, "CON"), "2");
    await unlink(t.p(d, "CON"));
    expect(await readdir(t.p(d))).toEqual(["c?d."]);
    await t.unmount();
    expect((await storedNames(t.low(d))).map(show)).toEqual([show(`c${pua("?")}d${pua(".")}`)]);
    await t.remount();
    expect(await readFile(t.p(d, "c?d."), "utf8")).toBe("1");
  });

  it("refuses a 256-byte name with ENAMETOOLONG and stores nothing", async () => {
    const d = await t.dir("too-long");
    for (const name of ["a".repeat(256), "€".repeat(85) + "b", "😀".repeat(64)]) {
      expect(Buffer.byteLength(name)).toBe(256);
      await expect(writeFile(t.p(d, name), "x"), `file ${name.slice(0, 8)}…`).rejects.toMatchObject({
        code: "ENAMETOOLONG",
      });
      await expect(mkdir(t.p(d, name)), `dir ${name.slice(0, 8)}…`).rejects.toMatchObject({
        code: "ENAMETOOLONG",
      });
    }
    expect(await readdir(t.p(d))).toEqual([]);
    await t.unmount();
    expect(await storedNames(t.low(d))).toEqual([]);
    await t.mount();
  });

  it("never lists the layer's own files, in the root or in a directory with metadata", async () => {
    const d = await t.dir("reserved");
    await writeFile(t.p(d, "key"), "k");
    await chmod(t.p(d, "key"), 0o600);
    await t.remount();
    expect(await readdir(t.p(d))).toEqual(["key"]);
    expect((await readdir(t.mnt)).filter((n) => n.startsWith(".pershome"))).toEqual([]);
    await t.unmount();
    // …while the stick does hold them: the root marker, and this directory's log.
    expect((await rawNames(t.lower.dir)).map(String)).toContain(".pershome");
    expect((await rawNames(t.low(d))).map(String).some((n) => n.startsWith(".pershome.meta."))).toBe(true);
    await t.mount();
  });

  it("keeps a user file named .pershome.meta.a apart from the directory's real log", async () => {
    const d = await t.dir("fake-log");
    await writeFile(t.p(d, ".pershome.meta.a"), "not a log\n");
    await writeFile(t.p(d, ".pershome"), "not a marker\n");
    await writeFile(t.p(d, "secret"), "s");
    await chmod(t.p(d, "secret"), 0o600);
    await t.remount();
    expect((await readdir(t.p(d))).sort()).toEqual([".pershome", ".pershome.meta.a", "secret"]);
    expect(await readFile(t.p(d, ".pershome.meta.a"), "utf8")).toBe("not a log\n");
    expect(await readFile(t.p(d, ".pershome"), "utf8")).toBe("not a marker\n");
    expect((await stat(t.p(d, "secret"))).mode & 0o7777).toBe(0o600);
  });
});
