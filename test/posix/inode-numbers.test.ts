// Inode numbers (st_ino, d_ino): the same at every mount for a file that did not move (git's
// index keeps them: a changed number makes `git status` read the file again), shared by hard
// links, the same in readdir as in stat, kept by a rename, and never shared by two files.
// src/fs/ino-numbers.ts; and the tables behind them (the numbers in use, inodes by node id).

import { link, mkdir, open, rename, stat, symlink, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ByNodeId } from "../../src/fs/by-node-id.js";
import { InoNumbers, numberOfPath } from "../../src/fs/ino-numbers.js";
import { Inode } from "../../src/fs/inode.js";
import { useLayer } from "../support/fixture.js";
import { lowerKinds } from "../support/lower.js";
import { describeFailure, mustRun, python, run, type RunResult } from "../support/run.js";

/**
 * Every name under `root` with its readdir d_ino and its lstat st_ino. Each folder is listed
 * first and its names stat'ed after, so a fresh mount answers readdir before any lookup.
 */
const WALK = `
import json, os, sys
out = {}
def walk(d, rel):
    with os.scandir(d) as it:
        ents = [(e.name, e.inode()) for e in it]
    for name, d_ino in ents:
        p = os.path.join(d, name)
        st = os.lstat(p)
        out[rel + name] = [d_ino, st.st_ino]
        if os.path.isdir(p) and not os.path.islink(p):
            walk(p, rel + name + "/")
walk(sys.argv[1], "")
print(json.dumps(out))
`;

async function walk(root: string): Promise<Record<string, [number, number]>> {
  const r = await python(WALK, [root], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(describeFailure(r));
  return JSON.parse(r.stdout) as Record<string, [number, number]>;
}

const stIno = (w: Record<string, [number, number]>): Record<string, number> =>
  Object.fromEntries(Object.entries(w).map(([k, v]) => [k, v[1]]));

function ok(r: RunResult): RunResult {
  if (r.code !== 0) throw new Error(describeFailure(r));
  return r;
}

describe("inode numbers from paths", () => {
  it("spreads paths over 31 bits and moves a taken number on to the next free one", () => {
    const a = numberOfPath("/notes/todo.txt");
    expect(numberOfPath("/notes/todo.txt")).toBe(a);
    expect(numberOfPath("/notes/todo.txT")).not.toBe(a);
    expect(Number.isInteger(a) && a > 1 && a < 2 ** 31).toBe(true);
    const n = new InoNumbers();
    expect(n.claim(a)).toBe(a);
    expect(n.claim(a)).toBe(a + 1);
    expect(n.peek(a)).toBe(a + 2);
    n.release(a);
    expect(n.claim(a)).toBe(a);
    expect(n.claim(1)).toBe(2); // the root keeps 1
    expect(n.claim(2 ** 31 - 1)).toBe(2 ** 31 - 1);
    expect(n.claim(2 ** 31 - 1)).toBe(3); // wraps past the root and 2
    // distinct paths, distinct numbers (no clash expected among 3,000: p < 0.3%)
    const paths = Array.from({ length: 3000 }, (_, i) => `/d${i % 20}/f${i}`);
    expect(new Set(paths.map(numberOfPath)).size).toBe(3000);
  });
});

/** The set of numbers in use as it was before the flat table: the model the table must match. */
class ModelNumbers {
  private readonly used = new Set<number>([1]);
  peek(wanted: number): number {
    let n = wanted > 1 && wanted < 2 ** 31 ? wanted : 2;
    while (this.used.has(n)) n = n + 1 >= 2 ** 31 ? 2 : n + 1;
    return n;
  }
  claim(wanted: number): number {
    const n = this.peek(wanted);
    this.used.add(n);
    return n;
  }
  release(n: number): void {
    if (n !== 1) this.used.delete(n);
  }
  get size(): number {
    return this.used.size;
  }
}

describe("the table of numbers in use", () => {
  it("grows past its first size and shrinks back, keeping every number", () => {
    const n = new InoNumbers();
    const got: number[] = [];
    for (let i = 0; i < 50_000; i++) got.push(n.claim(numberOfPath(`/d${i % 97}/f${i}`)));
    expect(n.size).toBe(50_001); // and the root
    expect(new Set(got).size).toBe(50_000);
    for (const x of got) expect(n.peek(x)).not.toBe(x);
    for (const x of got.slice(0, 49_990)) n.release(x);
    expect(n.size).toBe(11);
    for (const x of got.slice(0, 49_990)) expect(n.peek(x)).toBe(x);
    for (const x of got.slice(49_990)) expect(n.peek(x)).not.toBe(x);
    expect(n.peek(1)).toBe(2);
  });

  it("keeps a run of taken numbers whole when one in its middle is released", () => {
    const n = new InoNumbers();
    const base = 1_000_000;
    for (let i = 0; i < 300; i++) expect(n.claim(base)).toBe(base + i);
    n.release(base + 100);
    expect(n.peek(base)).toBe(base + 100);
    expect(n.claim(base + 50)).toBe(base + 100);
    expect(n.claim(base + 50)).toBe(base + 300);
    for (let i = 0; i <= 300; i++) n.release(base + i);
    expect(n.size).toBe(1);
    expect(n.claim(base + 7)).toBe(base + 7);
  });

  it("wraps from the last number to 2, past the root, and never hands out 0 or 1", () => {
    const n = new InoNumbers();
    const top = 2 ** 31 - 1;
    expect(n.claim(top - 1)).toBe(top - 1);
    expect(n.claim(top - 1)).toBe(top);
    expect(n.claim(top - 1)).toBe(2);
    expect(n.claim(top)).toBe(3);
    n.release(top);
    expect(n.claim(top - 1)).toBe(top);
    expect(n.claim(0)).toBe(4);
    expect(n.claim(1)).toBe(5);
    n.release(1); // the root's stays taken
    expect(n.claim(1)).toBe(6);
    expect(n.size).toBe(8); // the root, top - 1, top, 2 to 6
  });

  it("answers as a set of the numbers in use would, whatever the order", () => {
    // numbers from a narrow range, so that claims collide and runs wrap around the table
    const op = fc.oneof(
      fc.record({ claim: fc.integer({ min: 2 ** 31 - 40, max: 2 ** 31 - 1 }) }),
      fc.record({ claim: fc.integer({ min: 0, max: 3000 }) }),
      fc.record({ release: fc.nat(10_000) }),
      fc.record({ peek: fc.integer({ min: 0, max: 3000 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 2000, size: "max" }), (ops) => {
        const t = new InoNumbers();
        const m = new ModelNumbers();
        const held: number[] = [];
        for (const o of ops) {
          if ("claim" in o) {
            const x = t.claim(o.claim);
            expect(x).toBe(m.claim(o.claim));
            held.push(x);
          } else if ("release" in o) {
            if (held.length === 0) continue;
            const [x] = held.splice(o.release % held.length, 1);
            t.release(x!);
            m.release(x!);
          } else expect(t.peek(o.peek)).toBe(m.peek(o.peek));
          expect(t.size).toBe(m.size);
        }
      }),
      { numRuns: 60 },
    );
  });
});

describe("inodes by node id", () => {
  it("finds each value by id across pages, and frees a page with its last value", () => {
    const t = new ByNodeId<string>();
    for (let id = 2; id < 5000; id++) t.set(id, `v${id}`);
    t.set(2 ** 40 + 3, "far");
    expect(t.size).toBe(4999);
    expect(t.get(1)).toBeUndefined();
    expect(t.get(4999)).toBe("v4999");
    expect(t.get(5000)).toBeUndefined();
    expect(t.get(2 ** 40 + 3)).toBe("far");
    t.set(1023, "again");
    expect(t.size).toBe(4999);
    for (let id = 2; id < 4096; id++) t.delete(id);
    t.delete(3); // twice: no change
    expect(t.size).toBe(905); // 4096 to 4999, and the far one
    expect(t.get(1023)).toBeUndefined();
    expect(t.get(4096)).toBe("v4096");
    t.set(1023, "back");
    expect(t.get(1023)).toBe("back");
    expect(t.size).toBe(906);
  });
});

describe("an inode's side object (open counts, descriptors, children ...)", () => {
  const extra = (i: Inode): unknown => (i as unknown as { x: unknown }).x;

  it("goes once a file's last handle is closed, and stays while anything in it is set", () => {
    const file = new Inode(7, null, "a", "a", "f");
    expect(extra(file)).toBeNull(); // a file only looked up has none
    file.openCount = 1;
    file.fds = new Set([3]);
    file.trim();
    expect(extra(file), "open").not.toBeNull();
    file.openCount = 0;
    file.fds = null;
    file.markPending = true;
    file.trim();
    expect(extra(file), "a record still to mark").not.toBeNull();
    file.markPending = false;
    file.trim();
    expect(extra(file)).toBeNull();
    expect([file.openCount, file.writers, file.fds, file.nlink, file.linkId]).toEqual([0, 0, null, 1, null]);
    const dir = new Inode(8, null, "d", "d", "d");
    dir.trim();
    expect(extra(dir), "a folder keeps its children").not.toBeNull();
  });
});

describe.each(lowerKinds())("inode numbers on a %s lower", (kind) => {
  const t = useLayer(kind, "inos");

  it("shows each name the same number after a remount; hard links share one", async () => {
    const d = await t.dir("stable");
    await writeFile(t.p(d, "file"), "x");
    await mkdir(t.p(d, "sub"));
    await writeFile(t.p(d, "sub", "deep:er?"), "y");
    await symlink("file", t.p(d, "link"));
    await writeFile(t.p(d, "h1"), "shared");
    await link(t.p(d, "h1"), t.p(d, "sub", "h2"));
    const made = stIno(await walk(t.p(d)));
    expect(made["h1"]).toBe(made["sub/h2"]);
    await t.remount();
    const first = stIno(await walk(t.p(d)));
    await t.remount();
    const second = stIno(await walk(t.p(d)));
    expect(second).toEqual(first);
    expect(first["h1"]).toBe(first["sub/h2"]);
    // what did not get a second name keeps the number it had when made (a file's number
    // follows its data into .pershome/links when it gets a second name: once, at the next mount)
    for (const name of ["file", "sub", "sub/deep:er?", "link"]) expect(first[name], name).toBe(made[name]);
    expect((await stat(t.p(d))).ino).not.toBe((await stat(t.p(d, "sub"))).ino);
  });

  it("gives readdir's d_ino the number stat shows, before and after a lookup", async () => {
    const d = await t.dir("dino");
    await mkdir(t.p(d, "sub"));
    for (let i = 0; i < 50; i++) await writeFile(t.p(d, `f${i}`), `${i}`);
    await writeFile(t.p(d, "sub", "a"), "a");
    await link(t.p(d, "sub", "a"), t.p(d, "sub", "b"));
    await symlink("f1", t.p(d, "sym"));
    // d_type as lstat sees it (a listing after lookups gives names, numbers and types only)
    const TYPES = `
import os, stat, sys
bad = []
for root, dirs, files in os.walk(sys.argv[1]):
    with os.scandir(root) as it:
        for e in it:
            m = os.lstat(e.path).st_mode
            if e.is_symlink() != stat.S_ISLNK(m) or e.is_dir(follow_symlinks=False) != stat.S_ISDIR(m):
                bad.append(e.path)
print(len(bad), bad[:5])
`;
    const check = async (): Promise<void> => {
      const w = await walk(t.p(d));
      expect(Object.keys(w).length).toBe(54);
      for (const [name, [dIno, sIno]] of Object.entries(w)) expect(dIno, name).toBe(sIno);
      const types = await python(TYPES, [t.p(d)]);
      expect(types.stdout.trim()).toBe("0 []");
    };
    await check(); // every name known to the daemon
    await t.remount();
    await check(); // a fresh mount: readdir before any lookup
    await check(); // and again, every name looked up
  });

  it("keeps a file's and a folder's number through a rename in the mount", async () => {
    const d = await t.dir("rename");
    await writeFile(t.p(d, "a"), "a");
    await mkdir(t.p(d, "dir"));
    await writeFile(t.p(d, "dir", "in"), "in");
    const before = [(await stat(t.p(d, "a"))).ino, (await stat(t.p(d, "dir"))).ino];
    const inner = (await stat(t.p(d, "dir", "in"))).ino;
    await rename(t.p(d, "a"), t.p(d, "dir", "A moved"));
    await rename(t.p(d, "dir"), t.p(d, "dir2"));
    expect([(await stat(t.p(d, "dir2", "A moved"))).ino, (await stat(t.p(d, "dir2"))).ino]).toEqual(before);
    expect((await stat(t.p(d, "dir2", "in"))).ino).toBe(inner);
    // a new file where the old one was does not take its number
    await writeFile(t.p(d, "a"), "new");
    expect((await stat(t.p(d, "a"))).ino).not.toBe(before[0]);
    const w = await walk(t.p(d));
    for (const [name, [dIno, sIno]] of Object.entries(w)) expect(dIno, name).toBe(sIno);
  });

  it("never shows two files one number: an open deleted file keeps its own", async () => {
    const d = await t.dir("open");
    await writeFile(t.p(d, "x"), "old");
    const fh = await open(t.p(d, "x"), "r");
    try {
      const old = (await fh.stat()).ino;
      await unlink(t.p(d, "x"));
      await writeFile(t.p(d, "x"), "new"); // wants the very same number
      const now = (await stat(t.p(d, "x"))).ino;
      expect(now).not.toBe(old);
      expect((await fh.stat()).ino).toBe(old);
    } finally {
      await fh.close();
    }
  });

  it("gives a few thousand files distinct numbers, at every mount", async () => {
    const d = await t.dir("many");
    ok(
      await python(
        `import os, sys
for i in range(20):
    os.mkdir(os.path.join(sys.argv[1], "d%d" % i))
    for j in range(150):
        open(os.path.join(sys.argv[1], "d%d" % i, "f%d" % j), "w").close()`,
        [t.p(d)],
        { timeoutMs: 300_000 },
      ),
    );
    const check = async (): Promise<Record<string, number>> => {
      const inos = stIno(await walk(t.p(d)));
      expect(Object.keys(inos).length).toBe(20 * 151);
      expect(new Set(Object.values(inos)).size).toBe(20 * 151);
      return inos;
    };
    const made = await check();
    await t.remount();
    expect(await check()).toEqual(made);
  }, 600_000);

  it("git: after a remount the index's stat data still matches, so status reads no file again", async () => {
    const d = t.p(await t.dir("git"));
    const repo = join(d, "repo");
    const env = { HOME: d, GIT_CONFIG_NOSYSTEM: "1" };
    const git = (...args: string[]): Promise<RunResult> =>
      run("git", ["-c", "user.name=T", "-c", "user.email=t@example.invalid", ...args], { cwd: repo, env });
    await mkdir(join(repo, "src"), { recursive: true });
    for (let i = 0; i < 30; i++) await writeFile(join(repo, "src", `m${i}.c`), `int m${i};\n`);
    await writeFile(join(repo, "README"), "r\n");
    await mustRun("git", ["init", "-q", repo], { env });
    ok(await git("add", "-A"));
    ok(await git("commit", "-q", "-m", "first"));
    // a status a little later refreshes the index, so no entry is "racily clean"
    await new Promise((r) => setTimeout(r, 1100));
    expect(ok(await git("status", "--porcelain")).stdout).toBe("");
    // diff-files compares only the index's stat data with the files, reading no content: any
    // name it lists would be read and hashed again by the next `git status`
    expect(ok(await git("diff-files", "--name-only")).stdout).toBe("");
    await t.remount();
    expect(ok(await git("diff-files", "--name-only")).stdout, "stat data changed by the remount").toBe("");
    expect(ok(await git("status", "--porcelain")).stdout).toBe("");
  });
});
