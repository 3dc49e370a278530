/**
 * The libfuse3 low-level addon end to end: a memfs fixture (test/native/fixtures/memfs.mjs)
 * runs in a child process and the test drives the mount with real system calls and tools.
 */
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ADDON, cleanupMemfs, ensureAddon, isMounted, run, startMemfs, type Memfs } from "./helpers.js";
import type { PollStats } from "../../src/native/types.js";

const MiB = 1 << 20;
const ENOENT = "ENOENT";

beforeAll(() => ensureAddon(), 300_000);
afterEach(cleanupMemfs);

/** fs error code of a failing call, or "ok" */
function code(f: () => unknown): string {
  try {
    f();
    return "ok";
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
}

describe("pershome_fuse addon", () => {
  it("mounts; ls, cat, and a 4 MiB file written in 1 MiB writes reads back intact", async () => {
    const m = await startMemfs();
    expect(isMounted(m.mnt)).toBe(true);
    expect(fs.readdirSync(m.mnt)).toEqual([]);
    fs.writeFileSync(path.join(m.mnt, "hello.txt"), "hello\n");
    expect(run("ls", [m.mnt]).stdout.toString()).toBe("hello.txt\n");
    expect(run("cat", [path.join(m.mnt, "hello.txt")]).stdout.toString()).toBe("hello\n");

    const data = crypto.randomBytes(4 * MiB);
    const fd = fs.openSync(path.join(m.mnt, "big"), "w");
    for (let off = 0; off < data.length; off += MiB) fs.writeSync(fd, data, off, MiB, off);
    fs.closeSync(fd);
    expect(fs.statSync(path.join(m.mnt, "big")).size).toBe(4 * MiB);
    const back = fs.readFileSync(path.join(m.mnt, "big"));
    expect(back.equals(data)).toBe(true);

    const e = await m.stop();
    expect(e.code).toBe(0);
    expect(e.exitLine).toBe("ok");
    expect(e.stats!.init!.maxWrite).toBe(MiB);
    expect(e.stats!.maxWrite).toBe(MiB); // the kernel really sent 1 MiB writes
    expect(e.stats!.writeSizes[String(MiB)]).toBeGreaterThanOrEqual(4);
    expect(e.stats!.ops["destroy"]).toBe(1);
    expect(isMounted(m.mnt)).toBe(false);
  });

  it("hard links are one kernel inode: a write through one name shows at once through the other", async () => {
    const m = await startMemfs(); // 60 s attribute cache: two inodes would show a stale size
    const a = path.join(m.mnt, "a");
    const b = path.join(m.mnt, "b");
    fs.writeFileSync(a, "abc");
    expect(fs.statSync(b, { throwIfNoEntry: false })).toBeUndefined();
    fs.linkSync(a, b);
    const sa = fs.statSync(a);
    const sb = fs.statSync(b);
    expect(sb.ino).toBe(sa.ino);
    expect(sa.nlink).toBe(2);
    expect(sb.nlink).toBe(2);
    fs.appendFileSync(a, "defg");
    expect(fs.statSync(b).size).toBe(7);
    expect(fs.readFileSync(b, "utf8")).toBe("abcdefg");
    fs.writeFileSync(b, "xy"); // O_TRUNC through the other name
    expect(fs.statSync(a).size).toBe(2);
    expect(fs.readFileSync(a, "utf8")).toBe("xy");
    fs.unlinkSync(a);
    expect(fs.statSync(b).nlink).toBe(1);
    expect(code(() => fs.statSync(a))).toBe(ENOENT);
    expect((await m.stop()).code).toBe(0);
  });

  it("carries nanosecond timestamps both ways; touch -m sets only mtime", async () => {
    const m = await startMemfs({ env: { MEMFS_TIMEOUT: "0" } }); // every stat asks the daemon
    const f = path.join(m.mnt, "t");
    fs.writeFileSync(f, "");
    expect(run("touch", ["-d", "2001-02-03 04:05:06.123456789 UTC", f]).status).toBe(0);
    let st = fs.statSync(f, { bigint: true });
    expect(st.mtimeNs).toBe(981173106123456789n);
    expect(st.atimeNs).toBe(981173106123456789n);

    expect(run("touch", ["-m", "-d", "2010-01-01 00:00:00.987654321 UTC", f]).status).toBe(0);
    st = fs.statSync(f, { bigint: true });
    expect(st.mtimeNs).toBe(1262304000987654321n);
    expect(st.atimeNs).toBe(981173106123456789n); // untouched

    const before = BigInt(Date.now() - 5000) * 1_000_000n;
    expect(run("touch", ["-m", f]).status).toBe(0); // MTIME_NOW
    st = fs.statSync(f, { bigint: true });
    expect(st.mtimeNs > before).toBe(true);
    expect(st.atimeNs).toBe(981173106123456789n);

    // python's os.utime(ns=...) too, and read back through a separate stat
    const py = run("python3", [
      "-c",
      "import os,sys; os.utime(sys.argv[1], ns=(1, 2000000003)); s=os.stat(sys.argv[1]); print(s.st_atime_ns, s.st_mtime_ns)",
      f,
    ]);
    expect(py.stdout.toString().trim()).toBe("1 2000000003");

    const e = await m.stop();
    const MTIME = 1 << 5;
    const ATIME = 1 << 4;
    const MTIME_NOW = 1 << 8;
    const ATIME_NOW = 1 << 7;
    const times = e.stats!.setattrValid.filter((v) => v & (MTIME | ATIME));
    expect(times.length).toBeGreaterThanOrEqual(4);
    // touch -m -d: mtime only, as an explicit value; touch -m: mtime only, "now"
    expect(times.some((v) => v & MTIME && !(v & (ATIME | MTIME_NOW)))).toBe(true);
    expect(times.some((v) => v & MTIME_NOW && !(v & (ATIME | ATIME_NOW)))).toBe(true);
  });

  it("the flat replies (src/native/index.ts) answer entries, attributes, creates, opens and listings as the object forms do", async () => {
    // the same calls on a memfs answering with object replies and on one answering through
    // pershome's packer (MEMFS_FLAT=1): every field the kernel reports must come out the same
    const script = (mnt: string): string[] => {
      const f = path.join(mnt, "f");
      const fd = fs.openSync(f, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_RDWR, 0o640);
      const created = fs.fstatSync(fd, { bigint: true }); // the create's own reply
      fs.writeSync(fd, Buffer.alloc(5000, 1));
      fs.closeSync(fd);
      fs.utimesSync(f, new Date(1_234_567_890_500), new Date(2_000_000_000_250)); // a setattr's reply
      fs.mkdirSync(path.join(mnt, "d"), 0o711); // mkdir's entry
      fs.readFileSync(f); // an open's reply
      const show = (st: fs.BigIntStats): string =>
        [st.ino, st.mode, st.nlink, st.uid, st.gid, st.rdev, st.size, st.blocks, st.blksize]
          .concat([st.atimeNs, st.mtimeNs])
          .join(" ");
      // a listing (readdirplus) longer than one reply and than the packer's first buffers,
      // with a name that is not UTF-8; the attributes it gives are what lstat then shows
      const many = path.join(mnt, "many");
      fs.mkdirSync(many);
      for (let i = 0; i < 300; i++)
        fs.writeFileSync(path.join(many, `${"n".repeat(i % 200)}${i}`), "x".repeat(i));
      fs.writeFileSync(Buffer.concat([Buffer.from(many + "/"), Buffer.from([0x6e, 0xff])]), "raw");
      const listed = fs.readdirSync(many, { encoding: "buffer" }).map((n) => {
        const st = fs.lstatSync(Buffer.concat([Buffer.from(many + "/"), n]), { bigint: true });
        return `${n.toString("hex")} ${show(st).replace(/ \d+ \d+$/, "")}`;
      });
      return [
        show(created).replace(/ \d+ \d+$/, ""), // its times are now, not comparable
        show(fs.statSync(f, { bigint: true })),
        show(fs.statSync(path.join(mnt, "d"), { bigint: true })).replace(/ \d+ \d+$/, ""),
        ...listed,
      ];
    };
    const plain = await startMemfs();
    const want = script(plain.mnt);
    expect((await plain.stop()).stats!.readdirplusCalls).toBeGreaterThan(0);
    const flat = await startMemfs({ env: { MEMFS_FLAT: "1" } });
    const got = script(flat.mnt);
    const e = await flat.stop();
    expect(e.exitLine).toBe("ok");
    expect(e.stats!.readdirplusCalls).toBeGreaterThan(0);
    expect(got.length).toBe(3 + 301);
    expect(got).toEqual(want);
    expect(got[1]).toMatch(/ 5000 \d+ 4096 1234567890500000000 2000000000250000000$/);
    expect(e.stats!.ops["create"]).toBe(1 + 301);
    expect(e.stats!.ops["open"]).toBe(1);
  });

  it("names are raw bytes: 0xff and its U+FFFD look-alike are two files", async () => {
    const m = await startMemfs();
    const mnt = Buffer.from(m.mnt + "/");
    const raw = Buffer.from([0x6e, 0xff]); // "n\xff", not UTF-8
    const lookalike = Buffer.from("n\uFFFD"); // 6e ef bf bd
    fs.writeFileSync(Buffer.concat([mnt, raw]), "raw");
    fs.writeFileSync(Buffer.concat([mnt, lookalike]), "utf8");
    const names = fs
      .readdirSync(m.mnt, { encoding: "buffer" })
      .map((b) => b.toString("hex"))
      .sort();
    expect(names).toEqual([raw.toString("hex"), lookalike.toString("hex")].sort());
    expect(fs.readFileSync(Buffer.concat([mnt, raw]), "utf8")).toBe("raw");
    expect(fs.readFileSync(Buffer.concat([mnt, lookalike]), "utf8")).toBe("utf8");
    fs.renameSync(Buffer.concat([mnt, raw]), Buffer.concat([mnt, Buffer.from([0x80, 0xfe])]));
    expect(fs.readFileSync(Buffer.concat([mnt, Buffer.from([0x80, 0xfe])]), "utf8")).toBe("raw");
    expect((await m.stop()).code).toBe(0);
  });

  it("stores a 4 KiB xattr value; a too-small buffer gets ERANGE", async () => {
    const m = await startMemfs();
    const f = path.join(m.mnt, "x");
    fs.writeFileSync(f, "");
    const value = crypto.randomBytes(4096);
    expect(run("setfattr", ["-n", "user.big", "-v", "0x" + value.toString("hex"), f]).status).toBe(0);
    const got = run("getfattr", ["--only-values", "-n", "user.big", f]);
    expect(got.status).toBe(0);
    expect(got.stdout.equals(value)).toBe(true);
    expect(run("getfattr", ["-d", "-m", "-", f]).stdout.toString()).toContain("user.big=");

    const py = run("python3", [
      "-c",
      [
        "import ctypes, os, sys",
        "libc = ctypes.CDLL(None, use_errno=True)",
        "p, n = sys.argv[1].encode(), b'user.big'",
        "need = libc.getxattr(p, n, None, 0)",
        "buf = ctypes.create_string_buffer(4095)",
        "r = libc.getxattr(p, n, buf, 4095)",
        "print(need, r, ctypes.get_errno())",
      ].join("\n"),
      f,
    ]);
    expect(py.stdout.toString().trim()).toBe("4096 -1 34"); // size query; then ERANGE

    expect(run("setfattr", ["-x", "user.big", f]).status).toBe(0);
    expect(run("getfattr", ["-n", "user.big", f]).stderr.toString()).toContain("No such attribute");
    expect((await m.stop()).code).toBe(0);
  });

  it("readdirplus lists all of a 2,000-entry directory over several rounds", async () => {
    const m = await startMemfs();
    const d = path.join(m.mnt, "many");
    fs.mkdirSync(d);
    const want: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const name = `entry-${String(i).padStart(4, "0")}-${"x".repeat(i % 40)}`;
      want.push(name);
      fs.closeSync(fs.openSync(path.join(d, name), "w"));
    }
    const before = await m.stats();
    const names = fs.readdirSync(d);
    expect(names.length).toBe(2000);
    expect(new Set(names)).toEqual(new Set(want));
    expect(
      run("sh", ["-c", `ls -f '${d}' | wc -l`])
        .stdout.toString()
        .trim(),
    ).toBe("2002");
    const e = await m.stop();
    const rounds = e.stats!.readdirplusCalls - before.readdirplusCalls;
    expect(rounds).toBeGreaterThan(10);
    expect(e.stats!.readdirCalls).toBe(0); // READDIRPLUS_AUTO is off: always plus
  });

  it("fusermount3 -u from outside ends the session: onExit fires, the child exits 0", async () => {
    const m = await startMemfs();
    fs.writeFileSync(path.join(m.mnt, "f"), "x");
    expect(run("fusermount3", ["-u", m.mnt]).status).toBe(0);
    const e = await m.exited;
    expect(e.code).toBe(0);
    expect(e.exitLine).toBe("ok");
    expect(e.stats!.ops["destroy"]).toBe(1);
    expect(isMounted(m.mnt)).toBe(false);
  });

  it("session.unmount() from inside an op ends the session right after that op", async () => {
    const m = await startMemfs();
    fs.writeFileSync(path.join(m.mnt, "f"), "x");
    expect(code(() => fs.statSync(path.join(m.mnt, "unmount-now")))).toBe(ENOENT);
    const e = await m.exited;
    expect(e.code).toBe(0);
    expect(e.exitLine).toBe("ok");
    expect(isMounted(m.mnt)).toBe(false);
  });

  it("a throwing init() ends the session with that error", async () => {
    const m = await startMemfs({ env: { MEMFS_INIT_THROW: "1" } });
    const e = await m.exited;
    expect(e.exitLine).toMatch(/^init threw: Error: memfs: init refused/);
    expect(e.code).toBe(1);
    expect(isMounted(m.mnt)).toBe(false);
  });

  it("process.exit() while mounted still unmounts (atexit hook)", async () => {
    const m = await startMemfs({ env: { MEMFS_EXIT_MS: "300" } });
    fs.writeFileSync(path.join(m.mnt, "f"), "x");
    const e = await m.exited;
    expect(e.code).toBe(0);
    expect(isMounted(m.mnt)).toBe(false);
  });

  it("answers asynchronously: from a timer, and from a promise job", async () => {
    const m = await startMemfs({ env: { MEMFS_TIMEOUT: "0" } }); // every stat is a lookup
    fs.writeFileSync(path.join(m.mnt, "slow-file"), "12345");
    fs.writeFileSync(path.join(m.mnt, "micro-file"), "123");
    let t = Date.now();
    expect(fs.statSync(path.join(m.mnt, "slow-file")).size).toBe(5);
    expect(Date.now() - t).toBeGreaterThanOrEqual(90);
    t = Date.now();
    expect(code(() => fs.statSync(path.join(m.mnt, "slow-missing")))).toBe(ENOENT);
    expect(Date.now() - t).toBeGreaterThanOrEqual(90);
    expect(fs.statSync(path.join(m.mnt, "micro-file")).size).toBe(3); // needs the microtask drain
    expect((await m.stop()).code).toBe(0);
  });

  // The daemon is pinned to CPU 0 and the writer (dd, one WRITE request per byte) to CPU 1, so
  // the scheduler's placement cannot decide the outcome (a writer on the daemon's own CPU finds
  // it with the next request already waiting, polling or not).
  const twoCpus = os.availableParallelism() >= 2;
  const ddWrites = (mnt: string, n: number, cpu = 1): void => {
    const r = run("taskset", [
      "-c",
      `${cpu}`,
      "dd",
      "if=/dev/zero",
      `of=${path.join(mnt, "f")}`,
      "bs=1",
      `count=${n}`,
      "status=none",
    ]);
    expect(r.status, r.stderr.toString()).toBe(0);
  };
  const pollDelta = async (m: Memfs, work: () => Promise<void> | void): Promise<PollStats> => {
    const a = (await m.stats()).poll!;
    await work();
    const b = (await m.stats()).poll!;
    return {
      ...b,
      polls: b.polls - a.polls,
      caught: b.caught - a.caught,
      sleeps: b.sleeps - a.sleeps,
      lost: b.lost - a.lost,
    };
  };

  /** A CPU at least 80 % idle over 0.2 s, once there is one (at most 20 s). */
  const quietCpu = async (): Promise<number> => {
    const times = (): number[][] =>
      [...fs.readFileSync("/proc/stat", "utf8").matchAll(/^cpu(\d+) (.*)$/gm)].map((m) =>
        m[2]!.split(" ").map(Number),
      );
    for (const t0 = Date.now(); Date.now() - t0 < 20_000;) {
      const a = times();
      await new Promise((r) => setTimeout(r, 200));
      const b = times();
      for (let cpu = 0; cpu < b.length; cpu++) {
        const d = b[cpu]!.map((v, k) => v - a[cpu]![k]!);
        const all = d.reduce((x, y) => x + y, 0);
        if (all > 0 && (d[3]! + d[4]!) / all >= 0.8) return cpu; // idle + iowait
      }
    }
    throw new Error("every CPU stayed busy for 20 s: other programs are running; polling cannot be measured");
  };

  /** the memfs fixture on CPU 0, polling for up to `pollMicros` */
  const memfsOnCpu0 = (pollMicros: number): Promise<Memfs> =>
    startMemfs({ env: { MEMFS_INIT: JSON.stringify({ pollMicros }) }, wrapper: ["taskset", "-c", "0"] });

  it.skipIf(!twoCpus)(
    "polls for the next request while they come fast, and stops polling on a mount used slowly",
    async () => {
      const off = await memfsOnCpu0(0);
      ddWrites(off.mnt, 500);
      const offExit = await off.stop();
      expect(offExit.stats!.ops["write"]).toBe(500); // one WRITE request per byte
      const offStats = offExit.stats!.poll!;
      expect(offStats).toMatchObject({ polls: 0, caught: 0, polledMicros: 0, windowMicros: 0, lost: 0 });
      expect(offStats.sleeps, JSON.stringify(offStats)).toBeGreaterThan(400); // asleep in epoll before nearly every request

      const m = await memfsOnCpu0(500);
      // Each write follows the last reply within microseconds: caught by polling. A program busy
      // on the daemon's CPU would rightly pause polling (next test), so each try moves the
      // daemon to a quiet CPU and the writer to another, and starts with a short burst that
      // lets the window grow back.
      let fast: PollStats | undefined;
      let tries = 0;
      for (; tries < 3 && !(fast && fast.caught > 1000); tries++) {
        const cpu = await quietCpu();
        expect(run("taskset", ["-a", "-p", "-c", `${cpu}`, `${m.child.pid}`]).status).toBe(0);
        const other = (cpu + 1) % os.availableParallelism();
        ddWrites(m.mnt, 200, other);
        fast = await pollDelta(m, () => ddWrites(m.mnt, 2000, other));
      }
      expect(fast!.caught, JSON.stringify(fast)).toBeGreaterThan(1000);
      expect(fast!.caught).toBeLessThanOrEqual(fast!.polls);
      // then 20 ms apart: each sleep outlasts the window, which halves down to nothing
      const fd = fs.openSync(path.join(m.mnt, "f"), "w");
      for (let i = 0; i < 12; i++) {
        fs.writeSync(fd, "x");
        await new Promise((r) => setTimeout(r, 20));
      }
      fs.closeSync(fd);
      expect((await m.stats()).poll!.windowMicros).toBe(0);
      const e = await m.stop();
      expect(e.code).toBe(0);
      expect(e.stats!.ops["write"]).toBe(tries * 2200 + 12);
    },
  );

  it.skipIf(!twoCpus)(
    "stops polling while a busy program shares the daemon's CPU (yielding would hand it a whole time slice)",
    async () => {
      const m = await memfsOnCpu0(500);
      ddWrites(m.mnt, 200); // the window opens
      const hog = spawn("taskset", ["-c", "0", "sh", "-c", "while :; do :; done"], { stdio: "ignore" });
      try {
        await new Promise((r) => setTimeout(r, 50));
        const p = await pollDelta(m, () => ddWrites(m.mnt, 2000));
        // Without the pause every request polled and lost its CPU for the busy loop's slice
        // (2,000 polls, 7.9 s on the dev VM): now a few polls, then pauses growing to 1 s.
        expect(p.lost, JSON.stringify(p)).toBeGreaterThan(0);
        expect(p.polls, JSON.stringify(p)).toBeLessThan(100);
        expect(p.sleeps, JSON.stringify(p)).toBeGreaterThan(1500); // asleep in epoll, woken as each request comes
      } finally {
        hog.kill("SIGKILL");
      }
      expect((await m.stop()).code).toBe(0);
    },
  );

  it("a JS exception in an op is EIO to the caller, and the daemon carries on", async () => {
    const m = await startMemfs();
    expect(code(() => fs.statSync(path.join(m.mnt, "throw-me")))).toBe("EIO");
    fs.writeFileSync(path.join(m.mnt, "after"), "still here");
    expect(fs.readFileSync(path.join(m.mnt, "after"), "utf8")).toBe("still here");
    const e = await m.stop();
    expect(e.code).toBe(0);
    expect(e.stderr).toContain("lookup threw: Error: memfs: deliberate failure in lookup");
  });

  it("a request dropped unanswered gets EIO from the GC finalizer; a second reply throws", async () => {
    const m = await startMemfs();
    expect(code(() => fs.statSync(path.join(m.mnt, "drop-me")))).toBe("EIO");
    expect(code(() => fs.statSync(path.join(m.mnt, "double-me")))).toBe(ENOENT);
    fs.writeFileSync(path.join(m.mnt, "f"), "");
    expect(run("getfattr", ["-n", "user.double", path.join(m.mnt, "f")]).stderr.toString()).toContain(
      "No such attribute",
    );
    const e = await m.stop();
    expect(e.stats!.doubleReplyThrew).toBe(2);
  });

  const nobody = run("id", ["-u", "nobody"]);
  it.skipIf(nobody.status !== 0 || run("setpriv", ["--version"]).status !== 0)(
    "mounts and unmounts as an unprivileged user (through fusermount3)",
    async () => {
      const uid = Number(nobody.stdout.toString());
      const gid = Number(run("id", ["-g", "nobody"]).stdout.toString());
      const asNobody = ["setpriv", `--reuid=${uid}`, `--regid=${gid}`, "--clear-groups"];
      const m = await startMemfs({ wrapper: asNobody, owner: { uid, gid } });
      expect(isMounted(m.mnt)).toBe(true);
      const f = path.join(m.mnt, "f");
      const sh = (cmd: string): string =>
        run(asNobody[0]!, [...asNobody.slice(1), "sh", "-c", cmd]).stdout.toString();
      expect(sh(`echo hi > ${f} && cat ${f} && stat -c %u ${f}`)).toBe(`hi\n${uid}\n`);
      // without allow_other, other users (root included) are kept out by the kernel
      expect(code(() => fs.statSync(f))).toBe("EACCES");
      // and a mountpoint this user may not write to gets a clear reason
      const script = `try { require(${JSON.stringify(ADDON)}).mount(${JSON.stringify(path.dirname(m.mnt))}, {}, { options: [] }, () => {}); console.log("mounted") } catch (e) { console.log(e.message) }`;
      const denied = run(asNobody[0]!, [...asNobody.slice(1), process.execPath, "-e", script]);
      expect(denied.stdout.toString()).toContain("no write access to the mountpoint");
      const e = await m.stop(); // session.unmount() goes through fusermount3 -u
      expect(e.code).toBe(0);
      expect(e.exitLine).toBe("ok");
      expect(isMounted(m.mnt)).toBe(false);
    },
  );

  it("mount() throws a clear Error for a missing mountpoint or a bad option", async () => {
    const { fuse } = await import("../../src/native/index.js");
    const missing = "/tmp/pershome-native-does-not-exist/mnt";
    expect(() => fuse.mount(missing, {} as never, { options: [] }, () => {})).toThrow(
      /mount \/tmp\/pershome-native-does-not-exist\/mnt: .*No such file or directory/,
    );
    const dir = fs.mkdtempSync("/tmp/pershome-native-");
    const file = path.join(dir, "file");
    fs.writeFileSync(file, "");
    // if a mount ever succeeds here, undo it before failing (this process cannot serve it)
    const attempt = (mp: string, options: string[]): string => {
      try {
        fuse.mount(mp, {} as never, { options }, () => {}).unmount();
        return "mounted";
      } catch (e) {
        return (e as Error).message;
      }
    };
    try {
      expect(attempt(dir, ["no_such_option"])).toMatch(/bad options.*no_such_option/);
      expect(attempt(file, [])).toBe(`mount ${file}: not a directory`); // root could mount over a file
      expect(isMounted(dir) || isMounted(file)).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
  });
});
