// Real programs a home is used with: git, sqlite3, tar, ssh-keygen, python venvs, an editor's
// safe save. Each is run on the mount, then checked again after a remount.

import { chmod, mkdir, readFile, stat, symlink, link, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { useLayer } from "../support/fixture.js";
import { lowerKinds } from "../support/lower.js";
import { PYTHON, describeFailure, python, run, sh, type RunResult } from "../support/run.js";
import { perms, pyGetxattr, sys, utimeNs } from "../support/sys.js";

function ok(r: RunResult): RunResult {
  if (r.code !== 0) throw new Error(describeFailure(r));
  return r;
}

describe.each(lowerKinds())("real programs on a %s lower", (kind) => {
  const t = useLayer(kind, "programs", { sizeMb: 768 });

  it("git: init, add, commit; status is clean, also after a remount; fsck passes", async () => {
    const d = t.p(await t.dir("git"));
    const env = {
      HOME: d,
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_AUTHOR_DATE: "2024-01-01T00:00:00Z",
      GIT_COMMITTER_DATE: "2024-01-01T00:00:00Z",
    };
    const git = (...args: string[]): Promise<RunResult> =>
      run(
        "git",
        [
          "-c",
          "user.name=Test",
          "-c",
          "user.email=t@example.invalid",
          "-c",
          "init.defaultBranch=main",
          ...args,
        ],
        { cwd: join(d, "repo"), env },
      );
    await mkdir(join(d, "repo"));
    ok(await git("init", "-q"));
    await writeFile(join(d, "repo", "README.md"), "# project\n");
    await mkdir(join(d, "repo", "src"));
    await writeFile(join(d, "repo", "src", "main.sh"), "#!/bin/sh\necho hi\n");
    await chmod(join(d, "repo", "src", "main.sh"), 0o755);
    await symlink("src/main.sh", join(d, "repo", "run"));
    await writeFile(join(d, "repo", "Makefile"), "all:\n");
    await writeFile(join(d, "repo", "makefile.bak"), "old\n");
    ok(await git("add", "-A"));
    ok(await git("commit", "-q", "-m", "first"));
    expect(ok(await git("status", "--porcelain")).stdout).toBe("");
    await t.remount();
    expect(ok(await git("status", "--porcelain")).stdout, "clean after remount").toBe("");
    ok(await git("fsck", "--strict", "--no-progress"));
    const ls = ok(await git("ls-files", "-s")).stdout;
    expect(ls).toMatch(/^100755 \S+ 0\tsrc\/main\.sh$/m);
    expect(ls).toMatch(/^120000 \S+ 0\trun$/m);
    await writeFile(join(d, "repo", "README.md"), "# changed\n");
    expect(ok(await git("status", "--porcelain")).stdout).toBe(" M README.md\n");
  }, 180_000);

  it("sqlite3: a database in WAL mode passes PRAGMA integrity_check, also after a remount", async () => {
    const d = t.p(await t.dir("sqlite"));
    const db = join(d, "app.db");
    const sql = `PRAGMA journal_mode=WAL;
CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 5000)
INSERT INTO t(v) SELECT printf('row %d %s', i, hex(randomblob(50))) FROM n;
DELETE FROM t WHERE id % 7 = 0;
PRAGMA wal_checkpoint(TRUNCATE);
UPDATE t SET v = v || '!' WHERE id % 3 = 0;`;
    ok(await run("sqlite3", [db], { input: sql }));
    expect(ok(await run("sqlite3", [db, "PRAGMA integrity_check;"])).stdout.trim()).toBe("ok");
    await t.remount();
    expect(ok(await run("sqlite3", [db, "PRAGMA integrity_check;"])).stdout.trim()).toBe("ok");
    expect(ok(await run("sqlite3", [db, "SELECT count(*), sum(v LIKE '%!') FROM t;"])).stdout.trim()).toBe(
      "4286|1428",
    );
  }, 180_000);

  it("tar: a tree with symlinks, hard links, modes and times round-trips (tar --compare)", async () => {
    // The tree is built off the mount, archived, extracted onto the mount, compared.
    const src = join(t.lower.work, "tar-src");
    await mkdir(join(src, "tree", "bin"), { recursive: true });
    await mkdir(join(src, "tree", "private"), { recursive: true });
    await writeFile(join(src, "tree", "bin", "tool"), "#!/bin/sh\n");
    await chmod(join(src, "tree", "bin", "tool"), 0o755);
    await writeFile(join(src, "tree", "private", "key"), "k");
    await chmod(join(src, "tree", "private", "key"), 0o600);
    await chmod(join(src, "tree", "private"), 0o700);
    await writeFile(join(src, "tree", "data:1?.txt"), "odd name");
    await writeFile(join(src, "tree", "CON"), "device name");
    await writeFile(join(src, "tree", "big"), Buffer.alloc(300_000, 7));
    await link(join(src, "tree", "big"), join(src, "tree", "big-hardlink"));
    await symlink("bin/tool", join(src, "tree", "tool-link"));
    await symlink("/nonexistent/target", join(src, "tree", "dangling"));
    await sys("mkfifo", join(src, "tree", "fifo"), 0o640);
    await utimeNs(join(src, "tree", "data:1?.txt"), 1_500_000_000_000_000_000n, 1_500_000_000_000_000_000n);
    const archive = join(t.lower.work, "tree.tar");
    ok(await run("tar", ["--format=posix", "-cf", archive, "-C", src, "tree"]));
    const dest = t.p(await t.dir("tar"));
    ok(await run("tar", ["-xpf", archive, "-C", dest]));
    const compare = async (): Promise<void> => {
      const r = await run("tar", ["--compare", "-f", archive, "-C", dest]);
      expect(r.code, `tar --compare:\n${r.stdout}${r.stderr}`).toBe(0);
      const s1 = await stat(join(dest, "tree", "big"));
      const s2 = await stat(join(dest, "tree", "big-hardlink"));
      expect(s1.ino).toBe(s2.ino);
      expect(perms((await stat(join(dest, "tree", "private", "key"))).mode)).toBe("0600");
    };
    await compare();
    await t.remount();
    await compare();
    // And back: an archive made from the mount extracts to the same tree off the mount.
    const back = join(t.lower.work, "back.tar");
    ok(await run("tar", ["--format=posix", "-cf", back, "-C", dest, "tree"]));
    const out = join(t.lower.work, "tar-out");
    await mkdir(out);
    ok(await run("tar", ["-xpf", back, "-C", out]));
    const diff = await run("tar", ["--compare", "-f", archive, "-C", out]);
    expect(diff.code, `${diff.stdout}${diff.stderr}`).toBe(0);
  }, 180_000);

  it("ssh-keygen: a new ed25519 key is 0600 and ssh-keygen -y accepts it, also after a remount", async () => {
    const home = t.p(await t.dir("home"));
    await mkdir(join(home, ".ssh"), { mode: 0o700 });
    const key = join(home, ".ssh", "id_ed25519");
    ok(
      await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "test@stick", "-f", key], {
        env: { HOME: home },
      }),
    );
    expect(perms((await stat(key)).mode)).toBe("0600");
    const pub = (await readFile(`${key}.pub`, "utf8")).split(" ").slice(0, 2).join(" ");
    await t.remount();
    expect(perms((await stat(key)).mode)).toBe("0600");
    expect(perms((await stat(join(home, ".ssh"))).mode)).toBe("0700");
    const y = ok(await run("ssh-keygen", ["-y", "-f", key], { env: { HOME: home } }));
    expect(y.stdout.trim().split(" ").slice(0, 2).join(" ")).toBe(pub);
  }, 120_000);

  it("python3 -m venv: the venv's python and pip run, also after a remount", async () => {
    const d = t.p(await t.dir("venv"));
    const venv = join(d, ".venv");
    ok(await run(PYTHON, ["-m", "venv", venv], { timeoutMs: 300_000 }));
    const check = async (): Promise<void> => {
      const r = ok(
        await run(join(venv, "bin", "python"), [
          "-c",
          "import sys; print(sys.prefix != sys.base_prefix, sys.prefix)",
        ]),
      );
      expect(r.stdout.trim()).toBe(`True ${venv}`);
      ok(await run(join(venv, "bin", "python"), ["-m", "pip", "--version"], { timeoutMs: 120_000 }));
    };
    await check();
    await t.remount();
    await check();
  }, 600_000);

  it("an editor's safe save (write temp, fsync, rename over) keeps the file's mode and attributes", async () => {
    const d = await t.dir("editor");
    const f = t.p(d, "notes.txt");
    await writeFile(f, "version 1\n");
    await chmod(f, 0o600);
    await sys("setxattr", f, "user.app", "editor");
    // What vim (backupcopy=no) and most GUI editors do.
    const r = await python(
      `import os, sys
p = sys.argv[1]
st = os.stat(p)
tmp = p + ".tmp~"
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, b"version 2, longer than before\\n")
os.fchmod(fd, st.st_mode & 0o7777)
for name in os.listxattr(p):
    os.setxattr(tmp, name, os.getxattr(p, name))
os.fsync(fd); os.close(fd)
os.rename(tmp, p)
dfd = os.open(os.path.dirname(p), os.O_RDONLY | os.O_DIRECTORY); os.fsync(dfd); os.close(dfd)`,
      [f],
    );
    expect(r.code, r.stderr).toBe(0);
    await t.remount();
    expect(await readFile(f, "utf8")).toBe("version 2, longer than before\n");
    expect(perms((await stat(f)).mode)).toBe("0600");
    expect((await pyGetxattr(f, "user.app")).toString()).toBe("editor");
    expect((await sh(`ls -A '${t.p(d)}'`)).stdout).toBe("notes.txt\n");
  });
});
