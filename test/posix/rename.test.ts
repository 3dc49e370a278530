// rename(2): atomic replace, metadata travels with the file, POSIX errors, renameat2 flags.

import { readdirSync } from "node:fs";
import { chmod, mkdir, readFile, readdir, rename, stat, writeFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { useLayer } from "../support/fixture.js";
import { lowerKinds } from "../support/lower.js";
import { python, waitFor } from "../support/run.js";
import { traceDuring } from "../support/strace.js";
import { RENAME_NOREPLACE, errnoOf, perms, pyGetxattr, pyStat, sys, utimeNs } from "../support/sys.js";

describe.each(lowerKinds())("rename on a %s lower", (kind) => {
  const t = useLayer(kind, "rename");

  it("moves a file within and across directories with its mode, times and attributes", async () => {
    const d = await t.dir("carry");
    await mkdir(t.p(d, "to"));
    await writeFile(t.p(d, "f"), "payload");
    await chmod(t.p(d, "f"), 0o640);
    const m = 1_234_567_890_123_456_789n;
    await utimeNs(t.p(d, "f"), m, m);
    await sys("setxattr", t.p(d, "f"), "user.k", "v");
    await rename(t.p(d, "f"), t.p(d, "g"));
    await rename(t.p(d, "g"), t.p(d, "to", "h"));
    await t.remount();
    expect(await readdir(t.p(d))).toEqual(["to"]);
    const s = await pyStat(t.p(d, "to", "h"));
    expect(perms(s.mode)).toBe("0640");
    expect(s.mtimeNs).toBe(m);
    expect((await pyGetxattr(t.p(d, "to", "h"), "user.k")).toString()).toBe("v");
    expect(await readFile(t.p(d, "to", "h"), "utf8")).toBe("payload");
  });

  it("writes a burst of renames behind: a few log fsyncs for 100 renames, the stick in step within seconds", async () => {
    const d = await t.dir("burst");
    for (let i = 0; i < 100; i++) {
      await writeFile(t.p(d, `f${i}`), `file ${i}`);
      await chmod(t.p(d, `f${i}`), 0o600);
    }
    await t.remount(); // the records are on the stick: every rename's records are at stake
    const trace = await traceDuring(t.layer.pid, ["fsync", "fdatasync"], t.lower.work, async () => {
      const r = await python(
        `import os, sys
d = sys.argv[1]
for i in range(100): os.rename(os.path.join(d, "f%d" % i), os.path.join(d, "g%d" % i))`,
        [t.p(d)],
      );
      expect(r.code, r.stderr).toBe(0);
    });
    // one log fsync per rename before renames were written behind
    const logSyncs = trace.matching(/^f(data)?sync$/, ".pershome.meta.");
    expect(logSyncs.length, logSyncs.join("\n")).toBeLessThan(10);
    // Linux vfat writes a moved file's entry only with its inode: the batch fsyncs each moved
    // file once (lower.ts, rename); other sticks need nothing more
    if (kind !== "vfat") expect(trace.count(/^f(data)?sync$/)).toBeLessThan(10);
    else expect(trace.count(/^f(data)?sync$/)).toBeLessThanOrEqual(100 + 10);
    const want = Array.from({ length: 100 }, (_, i) => `g${i}`).sort();
    expect((await readdir(t.p(d))).sort()).toEqual(want);
    // the stick follows within the layer's 2-second flush
    const onStick = (): string[] => readdirSync(t.low(d)).filter((n) => !n.startsWith(".pershome"));
    await waitFor(() => onStick().sort().join() === want.join(), 10_000, 200);
    expect(onStick().sort()).toEqual(want);
    await t.remount();
    expect(perms((await stat(t.p(d, "g42"))).mode)).toBe("0600");
    expect(await readFile(t.p(d, "g42"), "utf8")).toBe("file 42");
  });

  it("replaces an existing file: the target takes the source's content and mode", async () => {
    const d = await t.dir("over");
    await writeFile(t.p(d, "old"), "old content");
    await chmod(t.p(d, "old"), 0o644);
    await writeFile(t.p(d, "new"), "new content");
    await chmod(t.p(d, "new"), 0o600);
    await rename(t.p(d, "new"), t.p(d, "old"));
    expect(await readdir(t.p(d))).toEqual(["old"]);
    await t.remount();
    expect(await readFile(t.p(d, "old"), "utf8")).toBe("new content");
    expect(perms((await stat(t.p(d, "old"))).mode)).toBe("0600");
  });

  it("never lets a reader see the target missing while it is replaced (200 renames, 0 ENOENT)", async () => {
    const d = await t.dir("atomic");
    await writeFile(t.p(d, "target"), "v0");
    const r = await python(
      `import os, sys
d = sys.argv[1]
t = os.path.join(d, "target")
pid = os.fork()
if pid == 0:
    for i in range(200):
        tmp = os.path.join(d, "tmp%d" % i)
        with open(tmp, "w") as f: f.write("v%d" % (i + 1))
        os.rename(tmp, t)
    os._exit(0)
missing = bad = reads = 0
while True:
    done = os.waitpid(pid, os.WNOHANG)[0] != 0
    try:
        with open(t) as f: s = f.read()
        reads += 1
        if not s.startswith("v"): bad += 1
    except FileNotFoundError:
        missing += 1
    if done: break
print(reads, missing, bad)`,
      [t.p(d)],
      { timeoutMs: 120_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    const [reads, missing, bad] = r.stdout.trim().split(" ").map(Number);
    expect(reads).toBeGreaterThan(0);
    expect({ missing, bad }).toEqual({ missing: 0, bad: 0 });
    expect(await readFile(t.p(d, "target"), "utf8")).toBe("v200");
    expect(await readdir(t.p(d))).toEqual(["target"]);
  }, 180_000);

  it("moves a directory tree; the children keep their modes", async () => {
    const d = await t.dir("tree");
    await mkdir(t.p(d, "a", "b"), { recursive: true });
    await writeFile(t.p(d, "a", "b", "key"), "k");
    await chmod(t.p(d, "a", "b", "key"), 0o600);
    await chmod(t.p(d, "a", "b"), 0o700);
    await rename(t.p(d, "a"), t.p(d, "A renamed."));
    await t.remount();
    expect(perms((await stat(t.p(d, "A renamed.", "b"))).mode)).toBe("0700");
    expect(perms((await stat(t.p(d, "A renamed.", "b", "key"))).mode)).toBe("0600");
    expect(await readFile(t.p(d, "A renamed.", "b", "key"), "utf8")).toBe("k");
  });

  it("gives the POSIX errors: ENOTEMPTY, EISDIR, ENOTDIR, EINVAL (into itself), ENOENT", async () => {
    const d = await t.dir("errors");
    await mkdir(t.p(d, "full"));
    await writeFile(t.p(d, "full", "x"), "x");
    await mkdir(t.p(d, "empty"));
    await mkdir(t.p(d, "other"));
    await writeFile(t.p(d, "file"), "f");
    expect(await errnoOf("rename", t.p(d, "other"), t.p(d, "full"))).toBe("ENOTEMPTY");
    expect(await errnoOf("rename", t.p(d, "file"), t.p(d, "empty"))).toBe("EISDIR");
    expect(await errnoOf("rename", t.p(d, "other"), t.p(d, "file"))).toBe("ENOTDIR");
    expect(await errnoOf("rename", t.p(d, "other"), t.p(d, "other", "inside"))).toBe("EINVAL");
    expect(await errnoOf("rename", t.p(d, "missing"), t.p(d, "x"))).toBe("ENOENT");
    // A directory may replace an empty directory.
    expect(await errnoOf("rename", t.p(d, "other"), t.p(d, "empty"))).toBe("OK");
    expect((await readdir(t.p(d))).sort()).toEqual(["empty", "file", "full"]);
  });

  it("honours RENAME_NOREPLACE: EEXIST on an existing target, success on a free one", async () => {
    const d = await t.dir("noreplace");
    await writeFile(t.p(d, "a"), "a");
    await writeFile(t.p(d, "b"), "b");
    expect(await errnoOf("renameat2", t.p(d, "a"), t.p(d, "b"), RENAME_NOREPLACE)).toBe("EEXIST");
    expect(await readFile(t.p(d, "b"), "utf8")).toBe("b");
    expect(await errnoOf("renameat2", t.p(d, "a"), t.p(d, "c"), RENAME_NOREPLACE)).toBe("OK");
    expect((await readdir(t.p(d))).sort()).toEqual(["b", "c"]);
  });

  it("gives a new file made under a renamed-away name fresh defaults, not the old 0600", async () => {
    const d = await t.dir("reuse");
    await writeFile(t.p(d, "id_rsa"), "old key");
    await chmod(t.p(d, "id_rsa"), 0o600);
    await rename(t.p(d, "id_rsa"), t.p(d, "id_rsa.old"));
    await writeFile(t.p(d, "id_rsa"), "new file", { mode: 0o644 });
    await t.remount();
    expect(perms((await stat(t.p(d, "id_rsa"))).mode)).toBe("0644");
    expect(perms((await stat(t.p(d, "id_rsa.old"))).mode)).toBe("0600");
  });

  it("renames onto a case twin: the twin is replaced, one name is left", async () => {
    const d = await t.dir("twin-over");
    await writeFile(t.p(d, "Makefile"), "upper");
    await writeFile(t.p(d, "makefile"), "lower");
    await rename(t.p(d, "makefile"), t.p(d, "Makefile"));
    expect(await readdir(t.p(d))).toEqual(["Makefile"]);
    await t.remount();
    expect(await readdir(t.p(d))).toEqual(["Makefile"]);
    expect(await readFile(t.p(d, "Makefile"), "utf8")).toBe("lower");
  });
});
