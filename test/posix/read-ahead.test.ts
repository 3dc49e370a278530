// A folder's first listing queues it for the addon's prefetch threads (src/native/prefetch.c):
// they read its metadata logs, lstat its entries and list its subfolders into the kernel's
// caches, so the requests that follow (git's parallel lstats right after a login) find them there. Read ahead is only
// ever a speed-up: these tests hold it to reading what the folder holds, to never following
// or waiting on what a hostile stick plants as a log, and to letting the stick go at unmount.

import { execFileSync } from "node:child_process";
import { readdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { lstat, mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { useLayer } from "../support/fixture.js";
import { lowerKinds, lowerKindsAmong } from "../support/lower.js";
import { requestsSinceLast, type Layer } from "../support/mount.js";
import { errnoOf } from "../support/sys.js";

interface ReadAhead {
  folders: number;
  entries: number;
  bytes: number;
  dropped: number;
  listed: number;
}

/** The daemon's read-ahead counters, once `done` holds for them (they grow on other threads). */
async function readAheadWhen(layer: Layer, done: (r: ReadAhead) => boolean): Promise<ReadAhead> {
  let last: ReadAhead | undefined;
  for (let i = 0; i < 50; i++) {
    await requestsSinceLast(layer); // writes a new report
    const text = layer.stderr().split("read ahead so far ").at(-1) ?? "";
    last = JSON.parse(/^(\{[^}]*\})/.exec(text)?.[1] ?? "null") as ReadAhead;
    if (last && done(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`read ahead never got there: ${JSON.stringify(last)}`);
}

const logBytes = (dir: string): number =>
  readdirSync(dir)
    .filter((n) => n.startsWith(".pershome.meta."))
    .reduce((sum, n) => sum + statSync(join(dir, n)).size, 0);

describe.each(lowerKinds())("reading a folder ahead on a %s lower", (kind) => {
  const t = useLayer(kind, "readahead");

  it("reads a folder's entries and log at its first use, and the answers stay right", async () => {
    const d = await t.dir("walk");
    for (let i = 0; i < 40; i++) await writeFile(t.p(d, `f${i}`), "x".repeat(i), { mode: 0o600 });
    await mkdir(t.p(d, "sub"));
    await t.unmount();
    const layer = await t.mount({ env: { PERSHOME_FUSE_COUNTS: "1" } });
    const logs = logBytes(t.low(d));
    expect(logs, "the folder has a log on the stick").toBeGreaterThan(0);
    const before = await readAheadWhen(layer, () => true);

    const st = await lstat(t.p(d, "f5")); // the folder's first use in this mount
    const after = await readAheadWhen(
      layer,
      (r) => r.folders > before.folders && r.bytes >= before.bytes + logs,
    );
    expect(
      after.entries - before.entries,
      "its 40 files, subfolder and log looked at",
    ).toBeGreaterThanOrEqual(42);
    expect(after.listed - before.listed, "its subfolder listed").toBeGreaterThanOrEqual(1);
    expect(after.dropped).toBe(0);
    expect([st.size, st.mode & 0o777]).toEqual([5, 0o600]);
    for (let i = 0; i < 40; i++) expect((await lstat(t.p(d, `f${i}`))).size, `f${i}`).toBe(i);
  });
});

describe.each(lowerKindsAmong("plain"))("read ahead on a hostile %s lower", (kind) => {
  const t = useLayer(kind, "readahead-hostile", { noMount: true });

  it("neither follows nor waits on what is planted as a log, and lets the stick go at unmount", async () => {
    const h = t.low("planted");
    execFileSync("mkdir", ["-p", h]);
    writeFileSync(join(h, "x"), "data");
    execFileSync("mkfifo", [join(h, ".pershome.meta.a")]); // opening it to read would block
    const big = join(t.lower.work, "outside.bin"); // not on the stick: never to be read
    writeFileSync(big, Buffer.alloc(2 << 20, 1));
    symlinkSync(big, join(h, ".pershome.meta.b"));

    const layer = await t.mount({ env: { PERSHOME_FUSE_COUNTS: "1" } });
    expect((await readdir(t.p("planted"))).sort()).toEqual(["x"]);
    expect(await readFile(t.p("planted", "x"), "utf8")).toBe("data");
    const r = await readAheadWhen(layer, (s) => s.entries >= 3);
    expect(r.bytes, "nothing read through the planted link").toBeLessThan(1 << 20);
    expect(await errnoOf("stat", t.p("planted", ".pershome.meta.b"))).toBe("ENOENT");
    await t.unmount(); // waits for the prefetch threads: a blocked fifo open would hang here
    expect(t.mounted()).toBe(false);
  });
});
