// Edits made to the stick elsewhere (Windows, macOS, a file manager) while the layer is down:
// the layer must show the stick as it is now, never stale metadata on a changed file.
// (The three foreign edits posixovl got wrong — a renamed file's mode inherited by a new file,
// a symlink replaced by a real file, a hard-link name deleted — are in posixovl-regressions.)

import { chmod, mkdir, readFile, readdir, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { useLayer } from "../support/fixture.js";
import { lowerKinds } from "../support/lower.js";
import { pua } from "../support/names.js";
import { perms } from "../support/sys.js";

const mode = async (p: string): Promise<string> => perms((await stat(p)).mode);

describe.each(lowerKinds())("edits made on the stick elsewhere (%s)", (kind) => {
  const t = useLayer(kind, "foreign");

  it("shows a file added on the stick, with default mode 0644 and its content", async () => {
    const d = await t.dir("added");
    await writeFile(t.p(d, "keep"), "k");
    await chmod(t.p(d, "keep"), 0o600); // the directory has a log
    await t.whileUnmounted(() => writeFile(t.low(d, "from windows.txt"), "hello from elsewhere"));
    expect((await readdir(t.p(d))).sort()).toEqual(["from windows.txt", "keep"]);
    expect(await readFile(t.p(d, "from windows.txt"), "utf8")).toBe("hello from elsewhere");
    expect(await mode(t.p(d, "from windows.txt"))).toBe("0644");
    expect(await mode(t.p(d, "keep"))).toBe("0600");
  });

  it("shows a file renamed on the stick under its new name only", async () => {
    const d = await t.dir("renamed");
    await writeFile(t.p(d, "draft.txt"), "text");
    await t.whileUnmounted(() => rename(t.low(d, "draft.txt"), t.low(d, "final.txt")));
    expect(await readdir(t.p(d))).toEqual(["final.txt"]);
    expect(await readFile(t.p(d, "final.txt"), "utf8")).toBe("text");
  });

  it("forgets a file deleted on the stick", async () => {
    const d = await t.dir("deleted");
    await writeFile(t.p(d, "gone"), "x");
    await chmod(t.p(d, "gone"), 0o700);
    await writeFile(t.p(d, "stays"), "y");
    await t.whileUnmounted(() => rm(t.low(d, "gone")));
    expect(await readdir(t.p(d))).toEqual(["stays"]);
    // A file made again under that name later is a new file with defaults.
    await writeFile(t.p(d, "gone"), "new");
    expect(await mode(t.p(d, "gone"))).toBe("0644");
  });

  it("shows the new content of a file edited on the stick, and drops its stale 0600 record", async () => {
    const d = await t.dir("edited");
    await writeFile(t.p(d, "notes.txt"), "old");
    await chmod(t.p(d, "notes.txt"), 0o600);
    await t.whileUnmounted(() => writeFile(t.low(d, "notes.txt"), "edited on windows, longer"));
    expect(await readFile(t.p(d, "notes.txt"), "utf8")).toBe("edited on windows, longer");
    expect((await stat(t.p(d, "notes.txt"))).size).toBe("edited on windows, longer".length);
    // docs/format.md "Fingerprints": a record whose file changed is stale: defaults.
    expect(await mode(t.p(d, "notes.txt"))).toBe("0644");
  });

  it("drops a record when only the stored mtime changed (same size: a touch or an editor's save)", async () => {
    const d = await t.dir("touched");
    await writeFile(t.p(d, "f"), "same size");
    await chmod(t.p(d, "f"), 0o640);
    await t.whileUnmounted(async () => {
      await writeFile(t.low(d, "f"), "SAME SIZE");
      await utimes(t.low(d, "f"), new Date("2021-03-04T05:06:08Z"), new Date("2021-03-04T05:06:08Z"));
    });
    expect(await readFile(t.p(d, "f"), "utf8")).toBe("SAME SIZE");
    expect(await mode(t.p(d, "f"))).toBe("0644");
  });

  it("shows a directory made on the stick with its files, with defaults 0755 and 0644", async () => {
    const d = await t.dir("newdir");
    await t.whileUnmounted(async () => {
      await mkdir(t.low(d, "Photos", "2024"), { recursive: true });
      await writeFile(t.low(d, "Photos", "2024", "img.jpg"), "jpeg");
    });
    expect(await mode(t.p(d, "Photos"))).toBe("0755");
    expect(await mode(t.p(d, "Photos", "2024"))).toBe("0755");
    expect(await mode(t.p(d, "Photos", "2024", "img.jpg"))).toBe("0644");
    expect(await readFile(t.p(d, "Photos", "2024", "img.jpg"), "utf8")).toBe("jpeg");
  });

  it("keeps the modes inside a directory renamed on the stick (its log moves with it)", async () => {
    const d = await t.dir("dir-renamed");
    await mkdir(t.p(d, "project"));
    await writeFile(t.p(d, "project", "run.sh"), "#!/bin/sh\n");
    await chmod(t.p(d, "project", "run.sh"), 0o755);
    await writeFile(t.p(d, "project", "secret"), "s");
    await chmod(t.p(d, "project", "secret"), 0o600);
    await t.whileUnmounted(() => rename(t.low(d, "project"), t.low(d, "Project (old)")));
    expect(await readdir(t.p(d))).toEqual(["Project (old)"]);
    expect(await mode(t.p(d, "Project (old)", "run.sh"))).toBe("0755");
    expect(await mode(t.p(d, "Project (old)", "secret"))).toBe("0600");
  });

  it("shows a regular file where the stick now has a file in place of a directory with a record", async () => {
    const d = await t.dir("kind-changed");
    await mkdir(t.p(d, "thing"));
    await chmod(t.p(d, "thing"), 0o700);
    await t.whileUnmounted(async () => {
      await rm(t.low(d, "thing"), { recursive: true });
      await writeFile(t.low(d, "thing"), "now a file");
    });
    const s = await stat(t.p(d, "thing"));
    expect(s.isFile()).toBe(true);
    expect(perms(s.mode)).toBe("0644");
    expect(await readFile(t.p(d, "thing"), "utf8")).toBe("now a file");
  });

  it("decodes names a WSL/Cygwin user made on Windows (private-use characters)", async () => {
    const d = await t.dir("wsl-names");
    await t.whileUnmounted(async () => {
      await writeFile(t.low(d, `a${pua(":")}b${pua("?")}.txt`), "wsl");
      await writeFile(t.low(d, `ends with dot${pua(".")}`), "dot");
    });
    expect((await readdir(t.p(d))).sort()).toEqual(["a:b?.txt", "ends with dot."]);
    expect(await readFile(t.p(d, "a:b?.txt"), "utf8")).toBe("wsl");
  });

  it("shows files copied onto the stick into a directory the layer already keeps a log for", async () => {
    const d = await t.dir("copied-in");
    for (const n of ["a", "b", "c"]) {
      await writeFile(t.p(d, n), n);
      await chmod(t.p(d, n), 0o600);
    }
    await t.whileUnmounted(async () => {
      for (let i = 0; i < 20; i++) await writeFile(t.low(d, `copied-${i}.dat`), `data ${i}`);
    });
    const names = (await readdir(t.p(d))).sort();
    expect(names).toHaveLength(23);
    for (const n of ["a", "b", "c"]) expect(await mode(t.p(d, n)), n).toBe("0600");
    for (let i = 0; i < 20; i++) expect(await mode(t.p(d, `copied-${i}.dat`))).toBe("0644");
    // …and the layer goes on recording in that directory.
    await chmod(t.p(d, "copied-7.dat"), 0o640);
    await t.remount();
    expect(await mode(t.p(d, "copied-7.dat"))).toBe("0640");
    expect(await mode(t.p(d, "a"))).toBe("0600");
  });
});
