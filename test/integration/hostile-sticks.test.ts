// A stick is untrusted input: damaged, forged or strange metadata and names must never crash the
// daemon, reach outside the stick, hide a data file, or grant what the stick claims.
// Each case: no crash (the daemon still serves), no escape, all data files listed, safe defaults.
//
// Forged records are copies of records the layer itself wrote (see support/metalog.ts), and
// each test that expects a forged record to be ignored also appends a well-formed forged record
// (c → 0604) and checks that it *is* honoured: the test cannot pass because nothing was read.
// The 0-byte log (posixovl's vanishing directory), planted device nodes and the damaged-line
// case are in posixovl-regressions.test.ts.

import {
  chmod,
  copyFile,
  mkdir,
  readFile,
  readdir,
  readlink,
  rm,
  stat,
  symlink,
  truncate,
  writeFile,
} from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { expectServing, forge, layerLog, storedNames } from "../support/checks.js";
import { rawNames, useLayer } from "../support/fixture.js";
import { lowerKinds } from "../support/lower.js";
import { LOG_A, LOG_B, appendRecords, logLine, writeLog, type MetaRecord } from "../support/metalog.js";
import { MountFailed, mountLayer } from "../support/mount.js";
import { pua, showBytes, TWIN, ESC } from "../support/names.js";
import { NOBODY, python, run, sh } from "../support/run.js";
import { errnoOf, fileType, perms, pyLstat, sys } from "../support/sys.js";

const CONTENT: Record<string, string> = { a: "content a", b: "content b", c: "content c", e: "content e" };
const MODES: Record<string, number> = { a: 0o600, b: 0o700, c: 0o640, e: 0o604 };
const CONTROL_MODE = 0o611;

/** Writes `count` small files straight onto the stick (name: a Python %-format of the index). */
async function fillOnStick(dir: string, count: number, nameFormat: string): Promise<void> {
  const r = await python(
    `import os, sys
d, n, fmt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for i in range(n):
    with open(os.path.join(d, fmt % i), "w") as f: f.write(str(i))`,
    [dir, String(count), nameFormat],
    { timeoutMs: 600_000 },
  );
  expect(r.code, r.stderr).toBe(0);
}

describe.each(lowerKinds())("a hostile stick (%s)", (kind) => {
  const t = useLayer(kind, "hostile", { mount: { allowOther: true }, sizeMb: 512 });
  const mode = async (...p: string[]): Promise<string> => perms((await stat(t.p(...p))).mode);

  /** A directory with files a, b, c, e (each with a record) and sub/ holding s (0600). */
  async function standardDir(tag: string): Promise<string> {
    const d = await t.dir(tag);
    for (const n of Object.keys(CONTENT)) {
      await writeFile(t.p(d, n), CONTENT[n]!);
      await chmod(t.p(d, n), MODES[n]!);
    }
    await mkdir(t.p(d, "sub"));
    await chmod(t.p(d, "sub"), 0o750);
    await writeFile(t.p(d, "sub", "s"), "content s");
    await chmod(t.p(d, "sub", "s"), 0o600);
    return d;
  }

  /** Unmounts, lets `edit` change the stick (given the layer's records of d), mounts again. */
  async function plant(
    d: string,
    edit: (lowerDir: string, rec: Map<string, MetaRecord>, logPath: string) => Promise<void>,
  ): Promise<void> {
    await t.unmount();
    const { log, byName } = await layerLog(t.low(d));
    await edit(t.low(d), byName, log.path);
    await t.lower.detach();
    await t.lower.attach();
    await t.mount();
  }

  const rec = (m: Map<string, MetaRecord>, n: string): MetaRecord => {
    const r = m.get(n);
    if (!r) throw new Error(`the layer wrote no record for ${n}`);
    return r;
  };

  async function expectDataListed(d: string): Promise<void> {
    expect((await readdir(t.p(d))).sort()).toEqual(["a", "b", "c", "e", "sub"]);
    for (const n of Object.keys(CONTENT)) expect(await readFile(t.p(d, n), "utf8"), n).toBe(CONTENT[n]);
    expect(await readFile(t.p(d, "sub", "s"), "utf8")).toBe("content s");
  }

  it("honours a well-formed record appended by another writer (the control for this file)", async () => {
    const d = await standardDir("control");
    await plant(d, (_, r, logPath) => appendRecords(logPath, [forge(rec(r, "c"), { m: CONTROL_MODE })]));
    expect(await mode(d, "c")).toBe(perms(CONTROL_MODE));
    expect(await mode(d, "a")).toBe("0600");
  });

  it("survives a log full of garbage: files listed with defaults, and the log is rewritten on the next change", async () => {
    const d = await standardDir("garbage");
    await plant(d, async (dir) => {
      const junk = Buffer.alloc(65536);
      for (let i = 0; i < junk.length; i++) junk[i] = (i * 2654435761) >>> 24;
      for (let i = 0; i < junk.length; i += 97) junk[i] = 0x0a;
      await rm(join(dir, LOG_B), { force: true });
      await writeFile(join(dir, LOG_A), junk);
    });
    await expectServing(t);
    await expectDataListed(d);
    expect([await mode(d, "a"), await mode(d, "b"), await mode(d, "sub")]).toEqual(["0644", "0644", "0755"]);
    await chmod(t.p(d, "a"), 0o600);
    await t.remount();
    expect(await mode(d, "a")).toBe("0600");
  });

  it("reads a log cut off in an appended record up to the cut: earlier records apply, the torn one not", async () => {
    const d = await standardDir("torn-append");
    await plant(d, async (dir, r, logPath) => {
      await rm(join(dir, LOG_A), { force: true });
      await rm(join(dir, LOG_B), { force: true });
      await writeLog(logPath, {
        snapshot: [rec(r, "a")],
        appended: [forge(rec(r, "c"), { m: CONTROL_MODE }), forge(rec(r, "b"), { m: 0o711 })],
      });
      const full = await readFile(logPath);
      await writeFile(logPath, full.subarray(0, full.length - 9));
    });
    await expectServing(t);
    await expectDataListed(d);
    expect(await mode(d, "a")).toBe("0600");
    expect(await mode(d, "c")).toBe(perms(CONTROL_MODE));
    expect(await mode(d, "b"), "the torn record").toBe("0644");
  });

  it("ignores a log cut off before its end-of-snapshot line entirely (incomplete): all defaults", async () => {
    const d = await standardDir("torn-snapshot");
    await plant(d, async (dir, r, logPath) => {
      await rm(join(dir, LOG_B), { force: true });
      const text =
        logLine({ pershome: "meta", v: 1, gen: 1 }) +
        logLine(rec(r, "a")) +
        logLine(rec(r, "b")).slice(0, 20);
      await writeFile(logPath, text);
    });
    await expectServing(t);
    await expectDataListed(d);
    expect([await mode(d, "a"), await mode(d, "b")]).toEqual(["0644", "0644"]);
  });

  it("does not read a 100 MB metadata file, mounts promptly and serves with defaults", async () => {
    const d = await standardDir("huge-log");
    await plant(d, async (dir, _r, logPath) => {
      await rm(join(dir, LOG_B), { force: true });
      await truncate(logPath, 100 * 1024 * 1024);
    });
    await expectServing(t);
    const t0 = Date.now();
    await expectDataListed(d);
    expect(Date.now() - t0, "listing took").toBeLessThan(20_000);
    expect(await mode(d, "a")).toBe("0644");
    await chmod(t.p(d, "b"), 0o700);
    await t.remount();
    expect(await mode(d, "b")).toBe("0700");
  }, 240_000);

  it("does not read a log with a line longer than 1 MiB", async () => {
    const d = await standardDir("long-line");
    await plant(d, async (dir, r, logPath) => {
      await rm(join(dir, LOG_B), { force: true });
      await writeLog(logPath, {
        snapshot: [forge(rec(r, "a"), { pad: "x".repeat(2 * 1024 * 1024) }), rec(r, "b")],
      });
    });
    await expectServing(t);
    await expectDataListed(d);
    expect([await mode(d, "a"), await mode(d, "b")]).toEqual(["0644", "0644"]);
  });

  it("survives a metadata log that is a directory", async () => {
    const d = await standardDir("log-is-dir");
    await plant(d, async (dir) => {
      await rm(join(dir, LOG_A), { force: true });
      await rm(join(dir, LOG_B), { force: true });
      await mkdir(join(dir, LOG_A));
      await writeFile(join(dir, LOG_A, "x"), "x");
    });
    await expectServing(t);
    await expectDataListed(d);
    expect(await mode(d, "a")).toBe("0644");
  });

  it("takes the complete slot with the highest generation, and skips an incomplete newer one", async () => {
    const d = await standardDir("slots");
    await plant(d, async (dir, r) => {
      await rm(join(dir, LOG_A), { force: true });
      await rm(join(dir, LOG_B), { force: true });
      await writeLog(join(dir, LOG_A), { gen: 7, snapshot: [forge(rec(r, "a"), { m: 0o640 }), rec(r, "b")] });
      await writeLog(join(dir, LOG_B), { gen: 8, snapshot: [forge(rec(r, "a"), { m: 0o604 })] });
    });
    expect(await mode(d, "a"), "gen 8 wins over gen 7").toBe("0604");
    expect(await mode(d, "b"), "b is not in gen 8").toBe("0644");
    await plant(d, async (dir, r) => {
      await rm(join(dir, LOG_A), { force: true });
      await rm(join(dir, LOG_B), { force: true });
      await writeLog(join(dir, LOG_A), { gen: 7, snapshot: [forge(rec(r, "a"), { m: 0o640 })] });
      // gen 9 without its end line: a compaction the stick was pulled in the middle of.
      await writeFile(
        join(dir, LOG_B),
        logLine({ pershome: "meta", v: 1, gen: 9 }) + logLine(forge(rec(r, "a"), { m: 0o604 })),
      );
    });
    expect(await mode(d, "a"), "the incomplete gen 9 is ignored").toBe("0640");
  });

  it("ignores records whose names leave the directory (../x, a/b, ., .., empty)", async () => {
    const d = await standardDir("traversal");
    const victim = `victim-of-${d}`;
    await writeFile(t.p(victim), "victim");
    await chmod(t.p(victim), 0o640);
    await plant(d, async (_dir, r, logPath) => {
      const a = rec(r, "a");
      await appendRecords(logPath, [
        forge(a, { n: `../${victim}`, k: "l", l: "/etc/shadow", m: 0o777 }),
        forge(a, { n: `../${victim}`, m: 0o4777 }),
        forge(a, { n: "sub/s", m: 0o777 }),
        forge(a, { n: ".", k: "d", m: 0 }),
        forge(a, { n: "..", k: "d", m: 0 }),
        forge(a, { n: "", m: 0o777 }),
        forge(a, { n: undefined, nb: Buffer.from("../x").toString("base64"), m: 0o777 }),
        forge(rec(r, "c"), { m: CONTROL_MODE }),
      ]);
    });
    await expectServing(t);
    await expectDataListed(d);
    expect(await mode(d, "c"), "control").toBe(perms(CONTROL_MODE));
    const v = await pyLstat(t.p(victim));
    expect(fileType(v.mode)).toBe("file");
    expect(perms(v.mode)).toBe("0640");
    expect(await readFile(t.p(victim), "utf8")).toBe("victim");
    expect(await mode(d, "sub", "s")).toBe("0600");
    expect(await mode(d)).toBe("0755");
    expect(await mode(d, "sub")).toBe("0750");
  });

  it("ignores hard-link ids that are not 16–32 hex digits, and never reads outside the stick through one", async () => {
    const d = await standardDir("link-ids");
    await plant(d, async (_dir, r, logPath) => {
      // What ../../../outside would reach from .pershome/links/ if the id were used as a path.
      await writeFile(join(t.lower.root, "outside"), "SECRET OUTSIDE THE HOME");
      await appendRecords(logPath, [
        forge(rec(r, "a"), { k: "h", h: "../../../outside" }),
        forge(rec(r, "b"), { k: "h", h: "/etc/passwd" }),
        forge(rec(r, "e"), { k: "h", h: "0123456789abcdef0123456789abcdef0" }),
        forge(rec(r, "c"), { m: CONTROL_MODE }),
      ]);
    });
    await expectServing(t);
    await expectDataListed(d);
    expect(await mode(d, "c"), "control").toBe(perms(CONTROL_MODE));
    for (const n of ["a", "b", "e"]) expect(fileType((await pyLstat(t.p(d, n))).mode), n).toBe("file");
  });

  it("shows a file whose valid hard-link id has no data as the file it is, and keeps serving", async () => {
    const d = await standardDir("link-missing");
    await plant(d, (_dir, r, logPath) =>
      appendRecords(logPath, [forge(rec(r, "a"), { k: "h", h: "00112233445566778899aabbccddeeff" })]),
    );
    await expectServing(t);
    expect((await readdir(t.p(d))).sort()).toEqual(["a", "b", "c", "e", "sub"]);
    await readFile(t.p(d, "a")).catch(() => undefined); // any answer, as long as the daemon lives
    await expectServing(t);
  });

  it("never makes a device from a record claiming one: the file stays a file with its own content", async () => {
    const d = await standardDir("device-records");
    await plant(d, (_dir, r, logPath) =>
      appendRecords(logPath, [
        forge(rec(r, "a"), { k: "c", m: 0o20666, rdev: 0x105, dev: [1, 5] }),
        forge(rec(r, "b"), { k: "b", m: 0o60660, rdev: 0x800 }),
        forge(rec(r, "e"), { m: 0o20666 }),
        forge(rec(r, "c"), { m: CONTROL_MODE }),
      ]),
    );
    await expectServing(t);
    await expectDataListed(d);
    expect(await mode(d, "c"), "control").toBe(perms(CONTROL_MODE));
    for (const n of ["a", "b", "e"]) {
      const s = await pyLstat(t.p(d, n));
      expect(fileType(s.mode), n).toBe("file");
      expect(s.rdev, n).toBe(0);
    }
  });

  it("does not let a record's setuid bits give root to anyone (nosuid)", async () => {
    const d = await t.dir("setuid-record");
    await copyFile("/usr/bin/id", t.p(d, "id"));
    await chmod(t.p(d, "id"), 0o755);
    await copyFile("/usr/bin/id", t.p(d, "id2"));
    await chmod(t.p(d, "id2"), 0o751);
    await plant(d, (_dir, r, logPath) =>
      appendRecords(logPath, [forge(rec(r, "id"), { m: 0o4755 }), forge(rec(r, "id2"), { m: 0o106755 })]),
    );
    await expectServing(t);
    for (const n of ["id", "id2"]) {
      const s = await pyLstat(t.p(d, n));
      expect(fileType(s.mode), n).toBe("file");
      const r = await run(t.p(d, n), ["-u"], { as: NOBODY });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim(), `${n} euid`).toBe(String(NOBODY.uid));
    }
  });

  it("does not let records claiming other owners change who owns a file (no owner field exists)", async () => {
    const d = await standardDir("other-owners");
    await plant(d, (_dir, r, logPath) =>
      appendRecords(logPath, [
        forge(rec(r, "a"), { u: 0, g: 0, uid: 0, gid: 0, owner: "root", m: 0o600 }),
        forge(rec(r, "b"), { uid: 1000, gid: 1000, o: "alice" }),
        forge(rec(r, "c"), { m: CONTROL_MODE }),
      ]),
    );
    // The home is mounted for nobody: every file is nobody's, whatever a record claims.
    await t.unmount();
    await t.mount({ allowOther: true, owner: NOBODY });
    try {
      await expectServing(t);
      expect(await mode(d, "c"), "control").toBe(perms(CONTROL_MODE));
      for (const n of ["a", "b", "c", "e"]) {
        const s = await pyLstat(t.p(d, n));
        expect([s.uid, s.gid], n).toEqual([NOBODY.uid, NOBODY.gid]);
      }
      // nobody owns a (0600) and can read it; root's claim gave root nothing nobody lacks
      const r = await run("cat", [t.p(d, "a")], { as: NOBODY });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(CONTENT.a);
    } finally {
      await t.unmount();
      await t.mount();
    }
  });

  it("serves symlink loops (records and, on a plain lower, planted links) without hanging: ELOOP, daemon alive", async () => {
    const d = await standardDir("symlink-loops");
    await plant(d, async (dir, r, logPath) => {
      await appendRecords(logPath, [
        forge(rec(r, "a"), { k: "l", l: "b" }),
        forge(rec(r, "b"), { k: "l", l: "a" }),
        forge(rec(r, "e"), { k: "l", l: "e" }),
        forge(rec(r, "c"), { m: CONTROL_MODE }),
      ]);
      if (t.lower.posixLower) {
        await symlink("loop2", join(dir, "loop1"));
        await symlink("loop1", join(dir, "loop2"));
        await symlink(".", join(dir, "sub", "self"));
      }
    });
    await expectServing(t);
    expect(await mode(d, "c"), "control").toBe(perms(CONTROL_MODE));
    for (const [n, target] of [
      ["a", "b"],
      ["b", "a"],
      ["e", "e"],
    ] as const) {
      expect(fileType((await pyLstat(t.p(d, n))).mode), n).toBe("symlink");
      expect(await readlink(t.p(d, n)), n).toBe(target);
      expect(
        await readFile(t.p(d, n)).then(
          () => "read",
          (e: NodeJS.ErrnoException) => e.code,
        ),
        n,
      ).toBe("ELOOP");
    }
    // every tool that walks the folder ends
    const find = await run("find", ["-L", t.p(d)], { timeoutMs: 60_000 });
    expect(find.stdout).toContain("sub");
    const ls = await run("ls", ["-lRL", t.p(d)], { timeoutMs: 60_000 });
    expect(ls.stdout).toContain("sub");
    if (t.lower.posixLower) {
      for (const n of ["loop1", "loop2"]) {
        // planted links are never followed by the daemon: an empty file that refuses to open
        expect(fileType((await pyLstat(t.p(d, n))).mode), n).toBe("file");
        expect(
          await readFile(t.p(d, n)).then(
            () => "read",
            (e: NodeJS.ErrnoException) => e.code,
          ),
          n,
        ).toMatch(/ELOOP|EACCES/);
      }
      expect((await readdir(t.p(d, "sub"))).sort()).toEqual(["s", "self"]);
    }
    await expectServing(t);
  });

  it.skipIf(kind !== "plain")(
    "lists 100,000 entries in one directory (on a plain lower) and keeps a mode among them",
    async () => {
      const d = await t.dir("hundred-thousand");
      await t.unmount();
      await fillOnStick(t.low(d), 100_000, "f%06d");
      await t.mount();
      const t0 = Date.now();
      // in a child process: a listing this long must not block the test worker
      const count = await python(
        `import os, stat, sys
n = 0; modes = {}
for e in os.scandir(sys.argv[1]):
    m = stat.S_IMODE(e.stat(follow_symlinks=False).st_mode); n += 1; modes[m] = modes.get(m, 0) + 1
print(n, modes.get(0o644, 0))`,
        [t.p(d)],
        { timeoutMs: 600_000 },
      );
      expect(count.code, count.stderr).toBe(0);
      expect(count.stdout.trim()).toBe("100000 100000");
      const ms = Date.now() - t0;
      console.log(`listing + stat of 100,000 entries in one folder: ${ms} ms`);
      expect(ms, "listing and stat of 100,000 entries took (ms)").toBeLessThan(300_000);
      await chmod(t.p(d, "f042424"), 0o600);
      await t.remount();
      expect(await mode(d, "f042424")).toBe("0600");
      expect(await readFile(t.p(d, "f099999"), "utf8")).toBe("99999");
      await t.unmount();
      await rm(t.low(d), { recursive: true, force: true });
      await t.mount();
    },
    1_200_000,
  );

  it.skipIf(kind !== "plain")(
    "does not read a 4 GiB (sparse) metadata file: files shown with defaults, promptly, and a log line says why",
    async () => {
      const d = await standardDir("four-gib-log");
      await plant(d, async (dir, _r, logPath) => {
        await rm(join(dir, LOG_B), { force: true });
        await truncate(logPath, 4 * 1024 * 1024 * 1024);
      });
      await expectServing(t);
      const t0 = Date.now();
      await expectDataListed(d);
      expect(Date.now() - t0, "listing took").toBeLessThan(20_000);
      expect(await mode(d, "a")).toBe("0644");
      expect(t.layer.stderr()).toMatch(/larger than \d+ bytes; ignored, files show with defaults/);
      await chmod(t.p(d, "b"), 0o700);
      await t.remount();
      expect(await mode(d, "b")).toBe("0700");
      expect(await mode(d, "a")).toBe("0644");
    },
    240_000,
  );

  it("mounts a stick whose format marker is a folder (or, on a plain lower, a fifo or a link), saying it is damaged", async () => {
    const d = await standardDir("marker-not-file");
    const area = join(t.lower.dir, ".pershome");
    const marker = join(area, "format");
    const before = await readFile(marker);
    const variants: [string, () => Promise<void>][] = [["folder", () => mkdir(marker)]];
    if (t.lower.posixLower) {
      variants.push(["fifo", () => sys("mkfifo", marker, 0o644).then(() => undefined)]);
      variants.push(["link", () => symlink("../../outside-marker", marker)]);
    }
    try {
      for (const [what, make] of variants) {
        await t.unmount();
        await rm(marker, { recursive: true, force: true });
        await make();
        await t.lower.detach();
        await t.lower.attach();
        await t.mount();
        await expectServing(t);
        await expectDataListed(d);
        expect(await mode(d, "a"), what).toBe("0600");
        expect(t.layer.stderr(), what).toMatch(/format is not a file; treating the stick as format 1/);
      }
    } finally {
      await t.unmount();
      await rm(marker, { recursive: true, force: true });
      await writeFile(marker, before);
      await t.mount();
    }
  });

  it("lists nothing for records of files that are not on the stick", async () => {
    const d = await standardDir("ghosts");
    await plant(d, (_dir, r, logPath) =>
      appendRecords(logPath, [
        forge(rec(r, "a"), { n: "ghost.txt" }),
        forge(rec(r, "a"), { n: "ghostlink", k: "l", l: "/etc" }),
        forge(rec(r, "sub"), { n: "ghostdir" }),
        forge(rec(r, "a"), { n: "ghostfifo", k: "p" }),
        forge(rec(r, "c"), { m: CONTROL_MODE }),
      ]),
    );
    await expectServing(t);
    await expectDataListed(d);
    expect(await mode(d, "c"), "control").toBe(perms(CONTROL_MODE));
    for (const g of ["ghost.txt", "ghostlink", "ghostdir", "ghostfifo"])
      expect(await errnoOf("lstat", t.p(d, g)), g).toBe("ENOENT");
    // A file made under a ghost's name is new: no inherited mode.
    await writeFile(t.p(d, "ghost.txt"), "real now");
    expect(await mode(d, "ghost.txt")).toBe("0644");
  });

  it("lists 10,000 entries in one directory and keeps a mode among them", async () => {
    const d = await t.dir("ten-thousand");
    await t.unmount();
    await fillOnStick(t.low(d), 10_000, "f%05d.txt");
    await t.mount();
    const t0 = Date.now();
    const names = await readdir(t.p(d));
    expect(names.length).toBe(10000);
    const ls = await run("ls", ["-l", t.p(d)], { timeoutMs: 300_000 });
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout.split("\n").filter((l) => l.startsWith("-rw-r--r--")).length).toBe(10000);
    expect(Date.now() - t0, "ls -l of 10,000 entries took (ms)").toBeLessThan(120_000);
    await chmod(t.p(d, "f04242.txt"), 0o600);
    await t.remount();
    expect(await mode(d, "f04242.txt")).toBe("0600");
    expect(await readFile(t.p(d, "f09999.txt"), "utf8")).toBe("9999");
  }, 900_000);

  it("shows stored names that would decode to '.', '..', a slash or nothing under a safe name, readable", async () => {
    const d = await t.dir("bad-decodes");
    // U+F02E decodes to ".", U+F02F to "/", a lone U+F0FE to "" and a trailing U+F0FF escapes nothing.
    const planted = [pua("."), pua(".") + pua("."), `a${pua("/")}b`, TWIN, `x${ESC}`, `${TWIN}${TWIN}`];
    await t.unmount();
    for (const [i, n] of planted.entries()) await writeFile(t.low(d, n), `planted ${i}`);
    await t.lower.detach();
    await t.lower.attach();
    await t.mount();
    await expectServing(t);
    const listed = await rawNames(t.p(d));
    expect(listed.length, `listed: ${listed.map(showBytes).join(", ")}`).toBe(planted.length);
    const contents: string[] = [];
    for (const n of listed) {
      const s = n.toString("latin1");
      expect(s === "." || s === ".." || s === "" || n.includes(0x2f) || n.includes(0), showBytes(n)).toBe(
        false,
      );
      contents.push(
        await sys("read", Buffer.concat([Buffer.from(t.p(d) + "/"), n])).then((v) =>
          Buffer.from((v as { b64: string }).b64, "base64").toString(),
        ),
      );
    }
    expect(contents.sort()).toEqual(planted.map((_, i) => `planted ${i}`).sort());
  });

  it.skipIf(kind !== "plain")(
    "shows names that are not UTF-8 on the stick under their own bytes",
    async () => {
      const d = await t.dir("non-utf8");
      const bad = [
        Buffer.from([0x66, 0xff, 0x2e, 0x74, 0x78, 0x74]),
        Buffer.from([0xc3, 0x28]),
        Buffer.from([0x80]),
      ];
      await t.unmount();
      for (const [i, n] of bad.entries())
        await writeFile(Buffer.concat([Buffer.from(t.low(d) + "/"), n]), `raw ${i}`);
      await t.mount();
      await expectServing(t);
      expect((await rawNames(t.p(d))).map(showBytes).sort()).toEqual(bad.map(showBytes).sort());
      for (const [i, n] of bad.entries()) {
        const v = (await sys("read", Buffer.concat([Buffer.from(t.p(d) + "/"), n]))) as { b64: string };
        expect(Buffer.from(v.b64, "base64").toString()).toBe(`raw ${i}`);
      }
    },
  );

  it.skipIf(kind !== "plain")(
    "shows both files when two stored names decode to the same user name",
    async () => {
      const d = await t.dir("collide");
      await t.unmount();
      await writeFile(t.low(d, "x:y"), "raw colon");
      await writeFile(t.low(d, `x${pua(":")}y`), "encoded colon");
      await t.mount();
      const listed = await readdir(t.p(d));
      expect(listed).toHaveLength(2);
      expect(listed).toContain("x:y");
      const contents = await Promise.all(listed.map((n) => readFile(t.p(d, n), "utf8")));
      expect(contents.sort()).toEqual(["encoded colon", "raw colon"]);
    },
  );

  it.skipIf(kind !== "plain")(
    "never follows a symlink planted in the stick directory to outside it",
    async () => {
      const d = await t.dir("planted-links");
      // Outside the home, beside the stick: what the planted links point at.
      const outside = join(t.lower.work, "outside");
      await mkdir(join(outside, "dir"), { recursive: true });
      await writeFile(join(outside, "secret"), "SECRET");
      await chmod(join(outside, "secret"), 0o600);
      await writeFile(join(outside, "dir", "inner"), "INNER");
      const victimLog = join(outside, "victim-log");
      await writeFile(victimLog, "DO NOT TOUCH");
      await t.unmount();
      // Relative to the lower dir, ../../../outside is <work>/outside; from the mountpoint it is not.
      await symlink("../../../outside/secret", t.low(d, "rel-link"));
      await symlink("../../../outside/dir", t.low(d, "dir-link"));
      await writeFile(t.low(d, "plain"), "plain");
      // A symlink where the layer keeps this directory's log.
      await rm(t.low(d, LOG_A), { force: true });
      await symlink(victimLog, t.low(d, LOG_A));
      await t.mount();
      await expectServing(t);
      // (An absolute planted link is left out: shown as a symlink, the kernel would follow it in the
      // user's own namespace, which is no escape by the daemon.)
      for (const n of ["rel-link", "dir-link"]) {
        const content = await readFile(t.p(d, n), "utf8").catch((e: NodeJS.ErrnoException) => `<${e.code}>`);
        expect(content, n).not.toBe("SECRET");
        await sh(`chmod 666 '${t.p(d, n)}'; touch '${t.p(d, n)}'; echo x >> '${t.p(d, n)}'`);
      }
      const inner = await readdir(t.p(d, "dir-link")).catch(() => []);
      expect(inner).not.toContain("inner");
      await writeFile(t.p(d, "dir-link", "new"), "x").catch(() => undefined);
      // The layer records a change in this directory (it must not write through the planted log link).
      await chmod(t.p(d, "plain"), 0o600);
      await t.unmount();
      expect(await readFile(join(outside, "secret"), "utf8")).toBe("SECRET");
      expect(perms((await stat(join(outside, "secret"))).mode)).toBe("0600");
      expect(existsSync(join(outside, "dir", "new"))).toBe(false);
      expect(await readFile(victimLog, "utf8")).toBe("DO NOT TOUCH");
      await t.mount();
    },
  );

  it.skipIf(kind !== "plain")("does not hang on a fifo planted in the stick directory", async () => {
    const d = await t.dir("planted-fifo");
    await t.unmount();
    await sys("mkfifo", t.low(d, "trap"), 0o666);
    await writeFile(t.low(d, "after"), "still readable");
    await t.mount();
    const r = await run("timeout", ["10", "cat", t.p(d, "trap")], { timeoutMs: 30_000 });
    expect(r.code, "cat of the planted fifo did not return within 10 s").not.toBe(124);
    await expectServing(t);
    expect(await readFile(t.p(d, "after"), "utf8")).toBe("still readable");
  });

  it("refuses to mount a stick of a newer format, saying to update pershome, and changes nothing", async () => {
    const d = await t.dir("newer");
    await writeFile(t.p(d, "f"), "x");
    await t.unmount();
    const markerPath = join(t.lower.dir, ".pershome", "format");
    const marker = JSON.stringify({ format: "pershome", version: 99, created: "2030-01-01T00:00:00Z" });
    const before = await readFile(markerPath, "utf8");
    await writeFile(markerPath, marker);
    const listing = (await storedNames(t.lower.dir)).sort();
    try {
      const err = await mountLayer(t.lower.dir, t.mnt, { readyTimeoutMs: 30_000 }).then(
        async (l) => {
          await l.stop();
          return undefined;
        },
        (e: unknown) => e,
      );
      expect(err, "the mount was refused").toBeInstanceOf(MountFailed);
      const mf = err as MountFailed;
      expect(mf.exit?.code, "exits with a failure status").not.toBe(0);
      expect(mf.stderr + mf.stdout).toMatch(/updat|upgrad|newer/i);
      expect(await readFile(markerPath, "utf8")).toBe(marker);
      expect((await storedNames(t.lower.dir)).sort()).toEqual(listing);
    } finally {
      await writeFile(markerPath, before);
      await t.mount();
    }
  });
});
