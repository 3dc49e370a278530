// The daemon holds the records of the folders' logs it has read only up to a budget: beyond it,
// those of idle folders are dropped and read again from the stick when used (src/fs/layer.ts
// trimMetas). Here the budget is tiny, so the walks below drop and read folders again and
// again: every mode and time must come back the same, and changes made in a folder read
// again must be kept, also across a remount.

import { chmod, lstat, mkdir, readFile, readdir, rename, unlink, utimes, writeFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { useLayer } from "../support/fixture.js";
import { lowerKinds } from "../support/lower.js";

const FOLDERS = 8;
const FILES = 25;
const MODES = [0o600, 0o640, 0o755, 0o444, 0o700];

describe.each(lowerKinds())("a home over the daemon's record budget on a %s lower", (kind) => {
  const env = { PERSHOME_META_BUDGET: "30", PERSHOME_FUSE_COUNTS: "1" };
  const t = useLayer(kind, "budget", { mount: { env } });

  it("drops idle folders' records and reads them again: modes, times and changes all kept", async () => {
    const root = await t.dir("home");
    /** path below root -> [mode, mtime in whole seconds] */
    const want = new Map<string, [number, number]>();
    for (let d = 0; d < FOLDERS; d++) {
      await mkdir(t.p(root, `d${d}`));
      for (let f = 0; f < FILES; f++) {
        const rel = `d${d}/f${f}`;
        const mode = MODES[(d + f) % MODES.length]!;
        const mtime = 1_600_000_000 + d * 1000 + f;
        await writeFile(t.p(root, rel), `${rel}\n`);
        await utimes(t.p(root, rel), mtime, mtime);
        want.set(rel, [mode, mtime]);
      }
    }
    // modes set after a remount: each folder's log is then its first snapshot with these
    // records appended, the first ones kept as earlier records (as in a home used for a while)
    await t.remount();
    for (const [rel, [mode]] of want) await chmod(t.p(root, rel), mode);
    const walk = async (when: string): Promise<void> => {
      const got = new Map<string, [number, number]>();
      for (const d of (await readdir(t.p(root))).sort())
        for (const f of await readdir(t.p(root, d))) {
          const st = await lstat(t.p(root, d, f));
          got.set(`${d}/${f}`, [st.mode & 0o7777, Math.round(st.mtimeMs / 1000)]);
        }
      expect(new Map([...got].sort()), when).toEqual(new Map([...want].sort()));
    };

    await t.remount(); // a fresh daemon: every folder's log is read from the stick, none written yet
    expect(
      (await readFile(t.low(root, "d0", ".pershome.meta.a"), "latin1")).split("\n").length,
      "a log with appended records",
    ).toBeGreaterThan(2 * FILES);
    await walk("first walk");
    await walk("second walk (the folders read again)");
    // changes in folders that were dropped and read again
    await chmod(t.p(root, "d0/f1"), 0o604);
    want.set("d0/f1", [0o604, want.get("d0/f1")![1]]);
    await rename(t.p(root, "d1/f2"), t.p(root, "d2/moved"));
    want.set("d2/moved", want.get("d1/f2")!);
    want.delete("d1/f2");
    await unlink(t.p(root, "d3/f3"));
    want.delete("d3/f3");
    await writeFile(t.p(root, "d4/new"), "new\n", { mode: 0o600 });
    want.set("d4/new", [0o600, Math.round((await lstat(t.p(root, "d4/new"))).mtimeMs / 1000)]);
    await walk("after the changes");
    expect(await readFile(t.p(root, "d2/moved"), "utf8")).toBe("d1/f2\n");

    const daemon = t.layer;
    await t.unmount(); // PERSHOME_FUSE_COUNTS: the counts go to the log at unmount
    const dropped = /folder logs dropped (\d+)/.exec(daemon.stderr());
    expect(Number(dropped?.[1] ?? -1), "folders' records dropped by the budget").toBeGreaterThan(FOLDERS);
    await t.mount();
    await walk("after a remount");
  });
});
