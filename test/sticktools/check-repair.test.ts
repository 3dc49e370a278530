// `pershome check --repair` on exFAT sticks: after a kill -9 of the layer in the middle of
// writing, and after the crash the format documents for hard links (data moved into
// .pershome/links, names not yet there). Every repair is followed by a clean second check
// and a fresh mount that shows the files.

import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
  writeSync,
  appendFileSync,
  linkSync,
  unlinkSync,
} from "node:fs";
import { existsSync, lstatSync, readlinkSync, symlinkSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { recordLine } from "../../src/format/records.js";
import { mountLayer } from "../support/mount.js";
import { exfatHostStick, json, pershome, scratch } from "./helpers.js";

const dir = scratch("repair");

function kinds(r: { stdout: string }): string[] {
  return (JSON.parse(r.stdout) as { findings: { kind: string; severity: string }[] }).findings
    .filter((f) => f.severity === "problem")
    .map((f) => f.kind)
    .sort();
}

describe("pershome check --repair on exFAT", () => {
  it("after kill -9 of the layer mid-write: finds the open records, repairs, and a second check is clean", async () => {
    const s = await exfatHostStick(dir, "kill", 64);
    expect((await pershome(["init", s.root])).code).toBe(0);
    const mnt = join(dir, "kill-layer");
    mkdirSync(mnt, { recursive: true });
    const layer = await mountLayer(s.home, mnt);
    mkdirSync(join(mnt, "work"));
    for (let i = 0; i < 10; i++) {
      writeFileSync(join(mnt, "work", `done${i}`), `file ${i}\n`.repeat(100), { mode: 0o640 });
    }
    writeFileSync(join(mnt, "work", "a"), "shared\n");
    linkSync(join(mnt, "work", "a"), join(mnt, "work", "b"));
    // a key being written when the machine dies: open, written, fsync'd, still open
    const fd = openSync(join(mnt, "work", "id_key"), "w", 0o600);
    writeSync(fd, "-----BEGIN KEY-----\n");
    fsyncSync(fd);
    writeSync(fd, "more, never synced\n");
    await layer.kill9();
    try {
      closeSync(fd);
    } catch {
      /* the mount is gone */
    }
    await s.detach();
    await s.attach();

    const c = await pershome(["check", s.root, "--json"]);
    expect(c.code, c.stdout + c.stderr).toBe(2);
    expect(kinds(c)).toContain("record-open");
    const text = await pershome(["check", s.root]);
    expect(text.stdout).toMatch(/\/work\/id_key: it was being written when the stick was last pulled/);
    expect(text.stdout).toMatch(/Nothing was changed\..*\n.*check --repair/);

    const fix = await pershome(["check", "--repair", s.root, "--json"]);
    expect(fix.code, fix.stdout + fix.stderr).toBe(0);
    expect(json(fix)).toMatchObject({ clean: true, remaining: [] });
    const again = await pershome(["check", s.root, "--json"]);
    expect(again.code, again.stdout).toBe(0);
    expect(kinds(again)).toEqual([]);
    expect(json(await pershome(["check", "--repair", s.root, "--json"]))).toMatchObject({
      clean: true,
      repaired: [],
    });

    const layer2 = await mountLayer(s.home, mnt);
    try {
      expect(statSync(join(mnt, "work/id_key")).mode & 0o777).toBe(0o600);
      expect(readFileSync(join(mnt, "work/id_key"), "utf8")).toMatch(/^-----BEGIN KEY-----\n/);
      for (let i = 0; i < 10; i++)
        expect(readFileSync(join(mnt, "work", `done${i}`), "utf8")).toBe(`file ${i}\n`.repeat(100));
      expect(statSync(join(mnt, "work/a")).ino).toBe(statSync(join(mnt, "work/b")).ino);
    } finally {
      await layer2.stop();
    }
    await s.detach();
  });

  it("puts hard-link data back where it came from, or in lost+found with a listing; link counts and lost records are fixed", async () => {
    const s = await exfatHostStick(dir, "links", 64);
    expect((await pershome(["init", s.root])).code).toBe(0);
    const mnt = join(dir, "links-layer");
    mkdirSync(mnt, { recursive: true });
    let layer = await mountLayer(s.home, mnt);
    mkdirSync(join(mnt, "d"));
    writeFileSync(join(mnt, "d/report.txt"), "the report\n", { mode: 0o750 });
    linkSync(join(mnt, "d/report.txt"), join(mnt, "d/report-link.txt"));
    writeFileSync(join(mnt, "d/lonely.txt"), "nobody points here\n", { mode: 0o600 });
    linkSync(join(mnt, "d/lonely.txt"), join(mnt, "d/lonely2.txt"));
    writeFileSync(join(mnt, "three"), "3\n");
    linkSync(join(mnt, "three"), join(mnt, "three-b"));
    linkSync(join(mnt, "three"), join(mnt, "d/three-c"));
    await layer.stop();

    const links = join(s.home, ".pershome/links");
    const ids = readdirSync(links).filter((n) => /^[0-9a-f]+$/.test(n));
    expect(ids).toHaveLength(3);
    const idOf = (p: string): string => /links\/([0-9a-f]+)/.exec(readFileSync(p, "latin1"))![1]!;
    const reportId = idOf(join(s.home, "d/report.txt"));
    const lonelyId = idOf(join(s.home, "d/lonely.txt"));
    // 1. the crash the format describes: the data is already in .pershome/links, no name has
    //    a placeholder yet, the folder's log still has the file's old record
    unlinkSync(join(s.home, "d/report.txt"));
    unlinkSync(join(s.home, "d/report-link.txt"));
    const data = statSync(join(links, reportId));
    appendFileSync(
      join(s.home, "d/.pershome.meta.a"),
      recordLine({ name: "report.txt", kind: "f", mode: 0o750, fp: [data.size, Math.floor(data.mtimeMs)] }),
    );
    // 2. both names of another file deleted elsewhere: its data has no name at all
    unlinkSync(join(s.home, "d/lonely.txt"));
    unlinkSync(join(s.home, "d/lonely2.txt"));
    // 3. one name of a three-name file deleted elsewhere: the count is too high
    unlinkSync(join(s.home, "three-b"));

    const c = await pershome(["check", s.root, "--json"]);
    expect(c.code).toBe(2);
    expect(kinds(c)).toEqual(expect.arrayContaining(["link-orphan", "link-count", "record-vanished"]));
    const found = (json(c).findings as { kind: string; path: string; fix: string }[]).filter(
      (f) => f.kind === "link-orphan",
    );
    expect(found.find((f) => f.path.includes(reportId))?.fix).toBe(
      "puts it back as /d/report.txt, where it came from",
    );
    expect(found.find((f) => f.path.includes(lonelyId))?.fix).toMatch(/moves it to \/lost\+found/);

    const fix = await pershome(["check", "--repair", s.root]);
    expect(fix.code, fix.stdout + fix.stderr).toBe(0);
    expect(fix.stdout).toMatch(/Put in \/lost\+found.*nothing was deleted/);
    expect(fix.stdout).toContain(`hard-linked-file-${lonelyId}`);
    expect((await pershome(["check", s.root])).stdout).toMatch(/Everything is in order/);

    layer = await mountLayer(s.home, mnt);
    try {
      expect(readFileSync(join(mnt, "d/report.txt"), "utf8")).toBe("the report\n");
      expect(statSync(join(mnt, "d/report.txt")).mode & 0o777).toBe(0o750);
      const lf = join(mnt, "lost+found", `hard-linked-file-${lonelyId}`);
      expect(readFileSync(lf, "utf8")).toBe("nobody points here\n");
      expect(statSync(lf).mode & 0o777).toBe(0o600);
      expect(readFileSync(join(mnt, "lost+found/LISTING.txt"), "utf8")).toMatch(
        new RegExp(`hard-linked-file-${lonelyId}: the data of a hard-linked file`),
      );
      expect(statSync(join(mnt, "three")).nlink).toBe(2);
      expect(statSync(join(mnt, "three")).ino).toBe(statSync(join(mnt, "d/three-c")).ino);
    } finally {
      await layer.stop();
    }

    // a placeholder whose record is lost is linked again (the log is in either slot: a
    // repair that forgets records rewrites it)
    const log = [".pershome.meta.a", ".pershome.meta.b"].map((n) => join(s.home, n)).find(existsSync)!;
    const lines = readFileSync(log, "utf8");
    writeFileSync(
      log,
      lines
        .split("\n")
        .filter((l) => !l.includes('"three"'))
        .join("\n"),
    );
    const c2 = await pershome(["check", s.root, "--json"]);
    expect(kinds(c2)).toEqual(expect.arrayContaining(["placeholder-no-record"]));
    expect((await pershome(["check", "--repair", s.root])).code).toBe(0);
    expect((await pershome(["check", s.root])).code).toBe(0);
    layer = await mountLayer(s.home, mnt);
    try {
      expect(readFileSync(join(mnt, "three"), "utf8")).toBe("3\n");
      expect(statSync(join(mnt, "three")).nlink).toBe(2);
    } finally {
      await layer.stop();
    }
    await s.detach();
  });

  it("an interrupted save, files edited elsewhere, a symlink touched elsewhere: each found, fixed, and the second check is clean", async () => {
    const s = await exfatHostStick(dir, "edits", 64);
    expect((await pershome(["init", s.root])).code).toBe(0);
    const mnt = join(dir, "edits-layer");
    mkdirSync(mnt, { recursive: true });
    let layer = await mountLayer(s.home, mnt);
    mkdirSync(join(mnt, "p"));
    writeFileSync(join(mnt, "p/keep.sh"), "#!/bin/sh\n", { mode: 0o755 });
    writeFileSync(join(mnt, "p/edited.txt"), "before\n", { mode: 0o600 });
    symlinkSync("keep.sh", join(mnt, "p/ln"));
    await layer.stop();

    const logA = join(s.home, "p/.pershome.meta.a");
    const text = readFileSync(logA, "utf8");
    // a compaction cut short: the other slot has a newer header and some records, no end line
    const lines = text.split("\n");
    writeFileSync(join(s.home, "p/.pershome.meta.b"), lines.slice(1, 2).join("\n") + "\n");
    writeFileSync(join(s.home, "p/edited.txt"), "edited on Windows, longer\n"); // fingerprint changes
    utimesSync(join(s.home, "p/ln"), new Date("2024-01-01"), new Date("2024-01-01")); // touched, same content

    const c = await pershome(["check", s.root, "--json"]);
    expect(c.code, c.stdout).toBe(2);
    expect(kinds(c)).toEqual(["log-leftover", "record-refresh", "record-stale"]);
    const fix = await pershome(["check", "--repair", s.root]);
    expect(fix.code, fix.stdout).toBe(0);
    expect(
      existsSync(join(s.home, "p/.pershome.meta.a")) !== existsSync(join(s.home, "p/.pershome.meta.b")),
    ).toBe(true);
    expect((await pershome(["check", s.root, "--json"])).code).toBe(0);

    layer = await mountLayer(s.home, mnt);
    try {
      expect(statSync(join(mnt, "p/keep.sh")).mode & 0o777).toBe(0o755);
      expect(statSync(join(mnt, "p/edited.txt")).mode & 0o777).toBe(0o644); // its old record no longer applies
      expect(readFileSync(join(mnt, "p/edited.txt"), "utf8")).toBe("edited on Windows, longer\n");
      expect(lstatSync(join(mnt, "p/ln")).isSymbolicLink()).toBe(true);
      expect(readlinkSync(join(mnt, "p/ln"))).toBe("keep.sh");
    } finally {
      await layer.stop();
    }
    await s.detach();
  });

  // A symlink's stored copy of its target is written without an fsync (docs/format.md,
  // rule 3): what a pull can leave of it (empty, or its size in zeros, with the time it was
  // made) still reads back as the link, and --repair writes the copy again.
  it("a symlink whose stored copy a pull left empty or zeroed is still the link; --repair writes the copy again", async () => {
    const s = await exfatHostStick(dir, "linkcopy", 32);
    expect((await pershome(["init", s.root])).code).toBe(0);
    const mnt = join(dir, "linkcopy-layer");
    mkdirSync(mnt, { recursive: true });
    let layer = await mountLayer(s.home, mnt);
    mkdirSync(join(mnt, "d"));
    symlinkSync("../target/file", join(mnt, "d/empty"));
    symlinkSync("other", join(mnt, "d/zeros"));
    symlinkSync("third", join(mnt, "d/replaced"));
    await layer.stop();

    /** what a pull leaves: the stored file's data lost, its entry's time kept */
    const pulled = (name: string, data: Buffer | string, mtime?: Date): void => {
      const p = join(s.home, "d", name);
      const st = statSync(p);
      writeFileSync(p, data);
      utimesSync(p, st.atime, mtime ?? st.mtime);
    };
    pulled("empty", "");
    pulled("zeros", Buffer.alloc(5));
    pulled("replaced", "", new Date("2024-01-01")); // an empty file made elsewhere, later

    layer = await mountLayer(s.home, mnt);
    try {
      for (const [name, target] of [
        ["empty", "../target/file"],
        ["zeros", "other"],
      ]) {
        expect(lstatSync(join(mnt, "d", name!)).isSymbolicLink(), name).toBe(true);
        expect(readlinkSync(join(mnt, "d", name!)), name).toBe(target);
      }
      const other = lstatSync(join(mnt, "d/replaced"));
      expect(other.isFile() && other.size === 0).toBe(true); // shown as the empty file it is
    } finally {
      await layer.stop();
    }

    const c = await pershome(["check", s.root, "--json"]);
    // no link is reported damaged (the replaced one's record may be stale, or dropped already)
    expect(kinds(c).filter((k) => k !== "record-stale")).toEqual([]);
    const notes = (json(c).findings as { kind: string; path: string }[])
      .filter((f) => f.kind === "link-copy-missing")
      .map((f) => f.path)
      .sort();
    expect(notes).toEqual(["/d/empty", "/d/zeros"]);
    const fix = await pershome(["check", "--repair", s.root, "--json"]);
    expect(fix.code, fix.stdout + fix.stderr).toBe(0);
    expect(json(fix)).toMatchObject({ clean: true, remaining: [], failed: [] });
    expect(readFileSync(join(s.home, "d/empty"), "utf8")).toBe("../target/file");
    expect(readFileSync(join(s.home, "d/zeros"), "utf8")).toBe("other");
    const again = await pershome(["check", s.root, "--json"]);
    expect(again.code, again.stdout).toBe(0);
    expect(json(again).findings).toEqual([]);

    layer = await mountLayer(s.home, mnt);
    try {
      expect(readlinkSync(join(mnt, "d/empty"))).toBe("../target/file");
      expect(readlinkSync(join(mnt, "d/zeros"))).toBe("other");
    } finally {
      await layer.stop();
    }
    await s.detach();
  });

  it("refuses to check a home that is mounted right now", async () => {
    const s = await exfatHostStick(dir, "busy", 32);
    expect((await pershome(["init", s.root])).code).toBe(0);
    const mnt = join(dir, "busy-layer");
    mkdirSync(mnt, { recursive: true });
    const layer = await mountLayer(s.home, mnt);
    try {
      const r = await pershome(["check", "--repair", s.root, "--json"]);
      expect(r.code).toBe(1);
      expect(json(r)).toMatchObject({ reason: "in-use" });
      expect(String(json(r).message)).toMatch(/mounted right now.*pershome umount/);
    } finally {
      await layer.stop();
    }
    await s.detach();
  });
});
