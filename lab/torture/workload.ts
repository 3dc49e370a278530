/**
 * A realistic home workload for the cut-point torture (lab/torture/cli.ts), run as its own
 * process on the mount until it is killed. Each promise it may rely on is written to a journal
 * on the host (not on the stick) only once the call that makes it durable has returned:
 *
 *   file <path> <sha> <mode>      content and mode durable (fsync of the file, and of its folder
 *                                 when the name is new)
 *   pending <path> <sha> <mode>   a change to a promised file is under way: this is allowed too
 *   forget <path>                 a promised file is about to be rewritten: no promise until the
 *                                 next one
 *   attempt <path> <sha>          a save-by-rename of <path> is about to happen
 *   saved <path> <sha>            ... and happened (folder fsync'd): this version or a later attempt
 *   symlink <path> <target>       a symlink durable (folder fsync'd)
 *   prefix <path> <len> <sha>     an append-only log: its first <len> bytes are durable
 *   sqlite <path> <rows>          a committed sqlite transaction: at least <rows> rows
 *   git <repo> <commit>           `git commit` returned (core.fsync=all)
 *
 * argv: mountpoint journal round seed
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { rng } from "../crash/model.js";

const [mnt, journal, roundArg, seedArg] = process.argv.slice(2) as [string, string, string, string];
const round = Number(roundArg);
const r = rng(Number(seedArg) * 7919 + round);
const int = (n: number): number => Math.floor(r() * n);
const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex").slice(0, 20);
const C = fs.constants;
process.umask(0);

const jfd = fs.openSync(journal, "a");
const note = (...a: (string | number)[]): void => {
  fs.writeSync(jfd, a.join(" ") + "\n");
};

const P = (...p: string[]): string => path.join(mnt, ...p);
const rel = (abs: string): string => path.relative(mnt, abs);

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, C.O_RDONLY | C.O_DIRECTORY);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
}

function bytes(len: number, salt: number): Buffer {
  const b = Buffer.alloc(len + 4);
  let x = (salt * 2654435761 + round) >>> 0 || 1;
  for (let i = 0; i < len; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b.writeUInt32LE(x, i);
  }
  return b.subarray(0, len);
}

/** Writes a new file, sets its mode, fsyncs it and its folder: promised. */
function newFile(abs: string, data: Buffer, mode: number): void {
  const fd = fs.openSync(abs, C.O_WRONLY | C.O_CREAT | C.O_TRUNC, 0o600);
  fs.writeSync(fd, data);
  fs.fchmodSync(fd, mode);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fsyncDir(path.dirname(abs));
  note("file", rel(abs), sha(data), mode.toString(8));
}

/** An editor's save: temp file, fsync, rename over, fsync the folder. */
function save(abs: string, data: Buffer): void {
  const tmp = `${abs}.swp`;
  const fd = fs.openSync(tmp, C.O_WRONLY | C.O_CREAT | C.O_TRUNC, 0o600);
  fs.writeSync(fd, data);
  fs.fchmodSync(fd, 0o600);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  note("attempt", rel(abs), sha(data));
  fs.renameSync(tmp, abs);
  fsyncDir(path.dirname(abs));
  note("saved", rel(abs), sha(data));
}

function append(abs: string, data: Buffer): void {
  const fd = fs.openSync(abs, C.O_WRONLY | C.O_CREAT | C.O_APPEND, 0o644);
  fs.writeSync(fd, data);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fsyncDir(path.dirname(abs));
  const all = fs.readFileSync(abs);
  note("prefix", rel(abs), all.length, sha(all));
}

const run = (cmd: string, args: string[], cwd: string): string =>
  execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

function hasTool(t: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${t}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const SQLITE = hasTool("sqlite3");
const GIT = hasTool("git");

function sqliteStep(n: number): void {
  const db = P("shared", "app.db");
  if (SQLITE) {
    run(
      "sqlite3",
      [db, "CREATE TABLE IF NOT EXISTS t(round INT, n INT, v TEXT); PRAGMA journal_mode=DELETE;"],
      mnt,
    );
    run(
      "sqlite3",
      // EXTRA: sqlite fsyncs the folder after deleting the journal (its commit point in DELETE
      // mode); with FULL it does not, and a pull right after COMMIT may keep the journal and so
      // roll the transaction back on the next open: not a commit sqlite promises to keep
      [
        db,
        `PRAGMA synchronous=EXTRA; BEGIN; INSERT INTO t VALUES(${round}, ${n}, hex(randomblob(${50 + int(2000)}))); COMMIT;`,
      ],
      mnt,
    );
    const rows = Number(run("sqlite3", [db, "SELECT count(*) FROM t;"], mnt).trim());
    note("sqlite", rel(db), rows);
  } else {
    // a stand-in: a journal-then-apply record store, each record fsync'd
    append(P("shared", "app.db.log"), Buffer.from(`row ${round} ${n} ${sha(bytes(64, n))}\n`));
  }
}

function gitStep(n: number): void {
  const repo = P("shared", "repo");
  if (!GIT) return;
  const g = (...a: string[]): string =>
    run(
      "git",
      [
        "-c",
        "core.fsync=all",
        "-c",
        "core.fsyncMethod=fsync",
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@e",
        ...a,
      ],
      repo,
    );
  if (!fs.existsSync(path.join(repo, ".git"))) {
    fs.mkdirSync(repo, { recursive: true });
    g("init", "-q");
  }
  fs.writeFileSync(path.join(repo, `notes-${n % 5}.txt`), `round ${round} step ${n}\n`.repeat(1 + int(50)));
  g("add", "-A");
  g("commit", "-q", "-m", `round ${round} step ${n}`);
  note("git", rel(repo), g("rev-parse", "HEAD").trim());
}

function untar(n: number, tarball: string): void {
  const dest = P(`round-${round}`, `tree-${n}`);
  fs.mkdirSync(dest, { recursive: true });
  run("tar", ["-xf", tarball, "-C", dest, "--no-same-owner"], mnt);
  // make it durable, then promise every file
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const fd = fs.openSync(p, C.O_RDONLY);
        fs.fsyncSync(fd);
        fs.closeSync(fd);
      }
    }
    fsyncDir(d);
  };
  walk(dest);
  fsyncDir(path.dirname(dest));
  const promise = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) promise(p);
      else if (e.isFile())
        note("file", rel(p), sha(fs.readFileSync(p)), (fs.statSync(p).mode & 0o7777).toString(8));
    }
  };
  promise(dest);
}

function churn(n: number): void {
  const d = P(`round-${round}`, "churn");
  fs.mkdirSync(d, { recursive: true });
  const name = path.join(d, `f${n % 7}`);
  const data = bytes(1 + int(20000), n);
  const mode = [0o600, 0o640, 0o755, 0o700, 0o644][int(5)]!;
  // a file rewritten in place after it was promised: the promise is dropped first
  if (fs.existsSync(name)) note("forget", rel(name));
  newFile(name, data, mode);
  if (int(2) === 0) {
    const m2 = [0o600, 0o711, 0o664][int(3)]!;
    // until the next promise, the file may show either mode
    note("pending", rel(name), sha(data), m2.toString(8));
    fs.chmodSync(name, m2);
    const fd = fs.openSync(name, C.O_RDONLY);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    note("file", rel(name), sha(data), m2.toString(8));
  }
  const link = path.join(d, `l${n}`);
  fs.symlinkSync(`f${n % 7}`, link);
  fsyncDir(d);
  note("symlink", rel(link), `f${n % 7}`);
  if (int(3) === 0) {
    const hard = path.join(d, `h${n}`);
    // the data is promised under both names; the first name is never touched again
    const keep = path.join(d, `k${n}`);
    newFile(keep, data, mode);
    fs.linkSync(keep, hard);
    fsyncDir(d);
    note("file", rel(hard), sha(data), mode.toString(8));
  }
}

function main(): void {
  const tarball = process.env.TORTURE_TARBALL ?? "";
  // what a user does after a pull: remove the lock files git left (it says which)
  for (const lock of ["index.lock", "HEAD.lock", "refs/heads/master.lock", "refs/heads/main.lock"])
    fs.rmSync(P("shared", "repo", ".git", lock), { force: true });
  fs.mkdirSync(P("shared", "docs"), { recursive: true });
  fs.mkdirSync(P(`round-${round}`), { recursive: true });
  fsyncDir(mnt);
  fsyncDir(P("shared"));
  // the driver times its cut from here (node itself takes seconds to start in an emulated guest)
  process.stdout.write("working\n");
  for (let n = 0; ; n++) {
    const what = int(10);
    try {
      if (what < 2) save(P("shared", "docs", `doc${int(4)}.odt`), bytes(1000 + int(100_000), n));
      else if (what < 4) churn(n);
      else if (what === 4) sqliteStep(n);
      else if (what === 5) gitStep(n);
      else if (what === 6 && tarball) untar(n, tarball);
      else if (what === 7) append(P(`round-${round}`, "big.log"), bytes(256 * 1024 + int(1024 * 1024), n));
      else newFile(P(`round-${round}`, `new-${n}`), bytes(int(50_000), n), [0o600, 0o644, 0o755][int(3)]!);
      // scratch writes nobody syncs
      fs.writeFileSync(P(`round-${round}`, `scratch-${n % 3}`), bytes(int(30_000), n + 1));
    } catch (e) {
      // Anything that fails is noted for the driver to report, and the workload goes on.
      const msg = ((e as { stderr?: string }).stderr || (e as Error).message).split("\n")[0]!.slice(0, 200);
      note("error", n, what, msg);
    }
  }
}

main();
