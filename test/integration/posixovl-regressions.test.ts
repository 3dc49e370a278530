// Every failure measured in posixovl (shared/research/prior-art-posixovl.md), as a named test.
// Each test name starts with what posixovl did; the test checks pershome does not.

import {
  chmod,
  link,
  mkdir,
  readFile,
  readdir,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  unlink,
  writeFile,
} from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { expectServing, forge, layerLog, storedNames, windowsValid } from "../support/checks.js";
import { rawNames, useLayer } from "../support/fixture.js";
import { lowerKinds } from "../support/lower.js";
import { LOG_A, LOG_B, appendRecords, readDirLog } from "../support/metalog.js";
import { show } from "../support/names.js";
import { python } from "../support/run.js";
import { traceDuring } from "../support/strace.js";
import { fileType, perms, pyLstat, pyStat, sys } from "../support/sys.js";

const mode = async (p: string): Promise<string> => perms((await stat(p)).mode);

describe.each(lowerKinds())("posixovl's failures do not happen here (%s)", (kind) => {
  const t = useLayer(kind, "posixovl", { sizeMb: 512 });

  // ---- names ---------------------------------------------------------------------------------

  it("posixovl: creating makefile beside Makefile overwrote the first file", async () => {
    const d = await t.dir("twins");
    await writeFile(t.p(d, "Makefile"), "all: build\n");
    await writeFile(t.p(d, "makefile"), "# a different file\n");
    await t.remount();
    expect((await readdir(t.p(d))).sort()).toEqual(["Makefile", "makefile"]);
    expect(await readFile(t.p(d, "Makefile"), "utf8")).toBe("all: build\n");
    expect(await readFile(t.p(d, "makefile"), "utf8")).toBe("# a different file\n");
  });

  it("posixovl: the longest usable name was 248 bytes (249–255 work here)", async () => {
    const d = await t.dir("long");
    const names = [249, 250, 251, 252, 253, 254, 255].map((n) => String(n % 10).repeat(n));
    for (const n of names) await writeFile(t.p(d, n), String(n.length));
    await t.remount();
    expect((await readdir(t.p(d))).sort()).toEqual([...names].sort());
    for (const n of names) expect(await readFile(t.p(d, n), "utf8")).toBe(String(n.length));
  });

  it.skipIf(kind === "plain")(
    "posixovl: a name too long for it on the stick made the whole directory unlistable",
    async () => {
      const d = await t.dir("long-on-stick");
      await t.unmount();
      // 255 UTF-16 units on the stick; 765 bytes as UTF-8, too long for a Linux name.
      await writeFile(t.low(d, "€".repeat(255)), "too long for Linux");
      await writeFile(t.low(d, "normal.txt"), "normal");
      await t.mount();
      await expectServing(t);
      const listed = await readdir(t.p(d));
      expect(listed).toContain("normal.txt");
      expect(await readFile(t.p(d, "normal.txt"), "utf8")).toBe("normal");
    },
  );

  it("posixovl: control characters, trailing dots/spaces and DOS device names reached the stick as they were", async () => {
    const d = await t.dir("windows-valid");
    const odd = [
      "CON",
      "aux.c",
      "nul",
      "com9.txt",
      "lpt1",
      "prn.",
      "trailing.",
      "trailing ",
      "tab\tname",
      "bell\u0007",
      'q"uote',
      "a*b",
      "c:d",
      "e<f>g",
      "h?i",
      "j\\k",
      "l|m",
    ];
    for (const n of odd) await writeFile(t.p(d, n), n);
    await mkdir(t.p(d, "dir. "));
    await writeFile(t.p(d, "dir. ", "inner:file"), "x");
    await t.unmount();
    const stored = [
      ...(await storedNames(t.low(d))),
      ...(await storedNames(t.low(d, await storedDirName(t.low(d))))),
    ];
    const invalid = stored.filter((n) => !windowsValid(n)).map(show);
    expect(invalid, "stored names Windows cannot open").toEqual([]);
    await t.mount();
    expect((await readdir(t.p(d))).sort()).toEqual([...odd, "dir. "].sort());
  });

  it("posixovl: a literal p%(3A)q listed as p:q", async () => {
    const d = await t.dir("percent");
    await writeFile(t.p(d, "p%(3A)q"), "literal");
    await t.remount();
    expect(await readdir(t.p(d))).toEqual(["p%(3A)q"]);
    expect(await readFile(t.p(d, "p%(3A)q"), "utf8")).toBe("literal");
  });

  // ---- metadata ------------------------------------------------------------------------------

  it("posixovl: timestamps were never stored", async () => {
    const d = await t.dir("times");
    await writeFile(t.p(d, "f"), "x");
    const m = 1_700_000_000_123_456_789n;
    await sys("utime", t.p(d, "f"), m.toString(), m.toString());
    await t.remount();
    expect((await pyStat(t.p(d, "f"))).mtimeNs).toBe(m);
  });

  it("posixovl: each file's metadata cost a sidecar file (a whole cluster) on the stick", async () => {
    const d = await t.dir("sidecars");
    for (let i = 0; i < 50; i++) {
      await writeFile(t.p(d, `f${i}`), "x");
      await chmod(t.p(d, `f${i}`), 0o600);
      await sys("setxattr", t.p(d, `f${i}`), "user.i", String(i));
    }
    await t.unmount();
    const all = (await rawNames(t.low(d))).map(String);
    const layerFiles = all.filter((n) => n.startsWith(".pershome"));
    expect(all.length - layerFiles.length).toBe(50);
    expect(layerFiles.length, `layer files: ${layerFiles.join(", ")}`).toBeLessThanOrEqual(2);
    await t.mount();
  });

  it("posixovl: a metadata update truncated and rewrote the sidecar (a crash left it empty)", async () => {
    // Append-only: between two looks, the log either grew by appending (the old bytes are a
    // prefix of the new) or was compacted into the other slot with a higher generation.
    const d = await t.dir("append-only");
    for (let i = 0; i < 5; i++) {
      await writeFile(t.p(d, `f${i}`), "x");
      await chmod(t.p(d, `f${i}`), 0o600);
    }
    await t.unmount();
    const before = await readDirLog(t.low(d));
    expect(before, "a log exists").toBeDefined();
    const beforeBytes = await readFile(before!.path);
    await t.mount();
    for (let i = 0; i < 5; i++) await chmod(t.p(d, `f${i}`), 0o640);
    await t.unmount();
    const after = await readDirLog(t.low(d));
    expect(after).toBeDefined();
    if (after!.path === before!.path) {
      const afterBytes = await readFile(after!.path);
      expect(afterBytes.length).toBeGreaterThan(beforeBytes.length);
      expect(afterBytes.subarray(0, beforeBytes.length).equals(beforeBytes), "old log bytes unchanged").toBe(
        true,
      );
    } else {
      expect(after!.gen!).toBeGreaterThan(before!.gen!);
      expect(existsSync(before!.path), "old slot removed after compaction").toBe(false);
    }
    await t.mount();
    for (let i = 0; i < 5; i++) expect(await mode(t.p(d, `f${i}`))).toBe("0640");
  });

  it("posixovl: a 0-byte sidecar made files vanish and the directory list as empty", async () => {
    const d = await t.dir("zero-byte");
    await mkdir(t.p(d, "docs"));
    for (const n of ["one", "two", "three"]) {
      await writeFile(t.p(d, "docs", n), n);
      await chmod(t.p(d, "docs", n), 0o600);
    }
    await t.unmount();
    await rm(t.low(d, "docs", LOG_B), { force: true });
    await writeFile(t.low(d, "docs", LOG_A), "");
    await t.lower.detach();
    await t.lower.attach();
    await t.mount();
    await expectServing(t);
    expect(await readdir(t.p(d))).toEqual(["docs"]);
    expect((await readdir(t.p(d, "docs"))).sort()).toEqual(["one", "three", "two"]);
    for (const n of ["one", "two", "three"]) {
      expect(await readFile(t.p(d, "docs", n), "utf8")).toBe(n);
      expect(await mode(t.p(d, "docs", n))).toBe("0644");
    }
    // The directory works normally afterwards.
    await chmod(t.p(d, "docs", "one"), 0o600);
    await t.remount();
    expect(await mode(t.p(d, "docs", "one"))).toBe("0600");
  });

  it("posixovl: a damaged sidecar was silently deleted (its good records lost)", async () => {
    const d = await t.dir("damaged");
    for (const n of ["a", "b", "c"]) {
      await writeFile(t.p(d, n), n);
      await chmod(t.p(d, n), 0o600);
    }
    await t.unmount();
    const { log, byName } = await layerLog(t.low(d));
    // One line with a bad CRC among good ones.
    const bad = JSON.stringify(forge(byName.get("b")!, { m: 0o777 }));
    await writeFile(log.path, (await readFile(log.path, "utf8")) + `deadbeef ${bad}\n`);
    await t.mount();
    expect([await mode(t.p(d, "a")), await mode(t.p(d, "b")), await mode(t.p(d, "c"))]).toEqual([
      "0600",
      "0600",
      "0600",
    ]);
    // A change makes the layer rewrite the log: the good records must survive that.
    await writeFile(t.p(d, "d"), "d");
    await chmod(t.p(d, "d"), 0o700);
    await t.remount();
    expect([
      await mode(t.p(d, "a")),
      await mode(t.p(d, "b")),
      await mode(t.p(d, "c")),
      await mode(t.p(d, "d")),
    ]).toEqual(["0600", "0600", "0600", "0700"]);
  });

  it("posixovl: multi-step operations left orphan files on the stick", async () => {
    const d = await t.dir("orphans");
    await sys("mkfifo", t.p(d, "fifo"), 0o600);
    await symlink("target", t.p(d, "link"));
    await writeFile(t.p(d, "file"), "data");
    await link(t.p(d, "file"), t.p(d, "hard"));
    await sys("setxattr", t.p(d, "file"), "user.x", "1");
    await rename(t.p(d, "hard"), t.p(d, "hard2"));
    await mkdir(t.p(d, "sub"));
    await chmod(t.p(d, "sub"), 0o700);
    await t.remount();
    for (const n of ["fifo", "link", "file", "hard2"]) await unlink(t.p(d, n));
    await rm(t.p(d, "sub"), { recursive: true });
    await t.unmount();
    expect(await storedNames(t.low(d)), "user files left on the stick").toEqual([]);
    const linksDir = join(t.lower.dir, ".pershome", "links");
    const left = existsSync(linksDir)
      ? (await storedNames(linksDir)).filter((n) => /^[0-9a-f]{16,32}$/.test(n))
      : [];
    expect(left, "hard-link data left in .pershome/links").toEqual([]);
    await t.mount();
  });

  // ---- foreign edits -------------------------------------------------------------------------

  it("posixovl: after Windows renamed a 0600 file, a new file under the old name inherited 0600", async () => {
    const d = await t.dir("stale-inherit");
    await writeFile(t.p(d, "id_rsa"), "PRIVATE KEY v1");
    await chmod(t.p(d, "id_rsa"), 0o600);
    await t.whileUnmounted(async () => {
      await rename(t.low(d, "id_rsa"), t.low(d, "id_rsa.bak"));
      // Same size as the old file, so only the stick's mtime tells them apart.
      await writeFile(t.low(d, "id_rsa"), "PUBLIC NOTE v2");
      await sys("utime", t.low(d, "id_rsa"), "1600000000000000000", "1600000000000000000");
    });
    expect(await mode(t.p(d, "id_rsa")), "the new file").toBe("0644");
    expect(await readFile(t.p(d, "id_rsa"), "utf8")).toBe("PUBLIC NOTE v2");
    expect(await readFile(t.p(d, "id_rsa.bak"), "utf8")).toBe("PRIVATE KEY v1");
  });

  it("posixovl: Windows replacing a symlink's placeholder with a real file hid the new content", async () => {
    const d = await t.dir("symlink-replaced");
    await symlink("../somewhere/else", t.p(d, "shortcut"));
    await t.whileUnmounted(async () => {
      await rm(t.low(d, "shortcut"));
      await writeFile(t.low(d, "shortcut"), "now a real document");
    });
    const s = await pyLstat(t.p(d, "shortcut"));
    expect(fileType(s.mode)).toBe("file");
    expect(await readFile(t.p(d, "shortcut"), "utf8")).toBe("now a real document");
  });

  it("posixovl: deleting one hard-link name on Windows lost or leaked the data", async () => {
    const d = await t.dir("hardlink-foreign");
    await writeFile(t.p(d, "a"), "linked data that must survive");
    await link(t.p(d, "a"), t.p(d, "b"));
    await t.whileUnmounted(() => rm(t.low(d, "a")));
    expect(await readdir(t.p(d))).toEqual(["b"]);
    expect(await readFile(t.p(d, "b"), "utf8")).toBe("linked data that must survive");
    // The surviving name is a usable file; removing it frees the data.
    await writeFile(t.p(d, "b"), "still writable");
    await t.remount();
    expect(await readFile(t.p(d, "b"), "utf8")).toBe("still writable");
  });

  // ---- special files and security ------------------------------------------------------------

  it("posixovl: a planted sidecar (20666 … 1:5) gave a working /dev/zero", async () => {
    const d = await t.dir("planted-device");
    await writeFile(t.p(d, "zero"), "not zeros");
    await chmod(t.p(d, "zero"), 0o640);
    await t.unmount();
    const { log, byName } = await layerLog(t.low(d));
    await appendRecords(log.path, [forge(byName.get("zero")!, { k: "c", m: 0o20666, rdev: 0x105 })]);
    if (t.lower.posixLower) {
      // On a lower that can hold one, a real device node planted beside it.
      await sys("mknod", t.low(d, "realzero"), 0o20666, 1, 5);
    }
    await t.mount();
    await expectServing(t);
    const s = await pyLstat(t.p(d, "zero"));
    expect(fileType(s.mode)).toBe("file");
    expect(await readFile(t.p(d, "zero"), "utf8")).toBe("not zeros");
    if (t.lower.posixLower) {
      const listed = await readdir(t.p(d));
      if (listed.includes("realzero")) {
        const r = await pyLstat(t.p(d, "realzero"));
        expect(["chardev", "blockdev"]).not.toContain(fileType(r.mode));
        const py = await python(
          `import os, sys
try:
    fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
    print(len(os.read(fd, 4096)))
except OSError as e:
    print("err", e.errno)`,
          [t.p(d, "realzero")],
          { timeoutMs: 20_000 },
        );
        expect(py.stdout.trim(), "reading the planted node must not stream zeros").not.toBe("4096");
      }
    }
  });

  it("posixovl: readlink returned the target still encoded", async () => {
    const d = await t.dir("readlink");
    const targets = ["dir:with/colon?", "CON", "trailing. ", 'x*y|z<w>v"u\\t'];
    for (const [i, target] of targets.entries()) await symlink(target, t.p(d, `l${i}`));
    await t.remount();
    for (const [i, target] of targets.entries()) expect(await readlink(t.p(d, `l${i}`))).toBe(target);
  });

  it("posixovl: removexattr touched the host file at the same absolute path", async () => {
    // A host file at /<name> and a mount file at <mnt>/<name>, each with user.tag.
    const name = `pershome-xattr-probe-${process.pid}-${Date.now()}`;
    const host = join("/tmp", name);
    await mkdir(t.p("tmp"), { recursive: true });
    const mine = t.p("tmp", name);
    await writeFile(host, "host");
    await writeFile(mine, "mine");
    try {
      await sys("setxattr", host, "user.tag", "host value");
      await sys("setxattr", mine, "user.tag", "mount value");
      await sys("removexattr", mine, "user.tag");
      await sys("setxattr", mine, "user.other", "x");
      expect((await sys("listxattr", host)) as string[]).toEqual(["user.tag"]);
      expect((await sys("listxattr", mine)) as string[]).toEqual(["user.other"]);
    } finally {
      await rm(host, { force: true });
    }
  });

  // ---- durability and concurrency ------------------------------------------------------------

  it("posixovl: an application's fsync made zero fsyncs on the stick", async () => {
    const d = await t.dir("fsync");
    const SYNCS = ["fsync", "fdatasync", "syncfs", "sync", "sync_file_range"];
    const isSync = /^(fsync|fdatasync|syncfs|sync|sync_file_range)$/;
    const files = await traceDuring(t.layer.pid, SYNCS, t.lower.work, async () => {
      const r = await python(
        `import os, sys
d = sys.argv[1]
for i in range(5):
    fd = os.open(os.path.join(d, "f%d" % i), os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"durable %d" % i)
    os.fsync(fd)
    os.close(fd)`,
        [t.p(d)],
      );
      expect(r.code, r.stderr).toBe(0);
    });
    expect(
      files.count(isSync),
      `lower sync calls for 5 file fsyncs:\n${files.lines.join("\n")}`,
    ).toBeGreaterThanOrEqual(5);
    const dir = await traceDuring(t.layer.pid, SYNCS, t.lower.work, async () => {
      const r = await python(
        `import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY); os.fsync(fd); os.close(fd)`,
        [t.p(d)],
      );
      expect(r.code, r.stderr).toBe(0);
    });
    expect(
      dir.count(isSync),
      `lower sync calls for 1 directory fsync:\n${dir.lines.join("\n")}`,
    ).toBeGreaterThanOrEqual(1);
  });

  it("posixovl: ls -lR over 2,000 files made ~49k lstat + ~24k open calls on the stick", async () => {
    const d = await t.dir("cost");
    const r = await python(
      `import os, sys
d = sys.argv[1]
for j in range(20):
    sub = os.path.join(d, "d%02d" % j); os.mkdir(sub)
    for i in range(100):
        with open(os.path.join(sub, "f%03d" % i), "w") as f: f.write("x")
    os.chmod(os.path.join(sub, "f000"), 0o600)`,
      [t.p(d)],
      { timeoutMs: 300_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    await t.remount(); // cold caches
    const trace = await traceDuring(
      t.layer.pid,
      ["open", "openat", "stat", "lstat", "newfstatat", "statx"],
      t.lower.work,
      async () => {
        const ls = await python(
          `import subprocess, sys; subprocess.run(["ls", "-lR", sys.argv[1]], stdout=subprocess.DEVNULL, check=True)`,
          [t.p(d)],
        );
        expect(ls.code, ls.stderr).toBe(0);
      },
    );
    const calls = trace.count(/^(open|openat|stat|lstat|newfstatat|statx)$/);
    // posixovl: ~36 per file. A layer that stats each entry once and reads each log once
    // needs ~1 per file; allow 4.
    expect(calls, "lower open+stat calls for 2,020 entries").toBeLessThanOrEqual(4 * 2020);
  }, 400_000);

  it("posixovl: concurrent chmod and stat of one file failed ~17% of calls (2 × 2000, 0 failures here)", async () => {
    const d = await t.dir("race");
    await writeFile(t.p(d, "f"), "race");
    const r = await python(
      `import os, sys
p = sys.argv[1]
N = 2000
pid = os.fork()
if pid == 0:
    fails = 0
    for i in range(N):
        try: os.chmod(p, 0o600 if i % 2 else 0o644)
        except OSError: fails += 1
    os._exit(min(fails, 255))
fails = 0
for i in range(N):
    try:
        st = os.stat(p)
        if (st.st_mode & 0o777) not in (0o600, 0o644): fails += 1
        with open(p) as f:
            if f.read() != "race": fails += 1
    except OSError:
        fails += 1
_, status = os.waitpid(pid, 0)
print(fails, os.WEXITSTATUS(status))`,
      [t.p(d, "f")],
      { timeoutMs: 300_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    const [statFails, chmodFails] = r.stdout.trim().split(" ").map(Number);
    expect({ statFails, chmodFails }).toEqual({ statFails: 0, chmodFails: 0 });
    await t.remount();
    expect(await mode(t.p(d, "f"))).toBe("0600"); // the last chmod (i = 1999) was 0600
  }, 400_000);
});

/** The stored name of the single directory in a lower directory. */
async function storedDirName(lowerDir: string): Promise<string> {
  const names = await storedNames(lowerDir);
  for (const n of names) if ((await stat(join(lowerDir, n))).isDirectory()) return n;
  throw new Error(`no directory in ${lowerDir}`);
}
