/**
 * Memory safety of the addon under a broad workload:
 *  - AddressSanitizer: the addon is rebuilt with -fsanitize=address into .cache/native-asan/
 *    (binding.gyp honours PERSHOME_ASAN=1; the regular build is left alone) and the memfs
 *    fixture runs with libasan preloaded into node.
 *  - valgrind memcheck on the regular build, when valgrind is installed and the run stays
 *    cheap (it self-skips if node takes over 60 s just to mount under valgrind).
 */
import { spawn, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  ADDON,
  NATIVE_DIR,
  NATIVE_SOURCES,
  ROOT,
  cleanupMemfs,
  ensureAddon,
  isMounted,
  nodeGypRebuild,
  run,
  startMemfs,
} from "./helpers.js";
import type { Memfs } from "./helpers.js";

const libasan = spawnSync("gcc", ["-print-file-name=libasan.so"], { encoding: "utf8" }).stdout?.trim() ?? "";
const haveAsan = libasan.startsWith("/") && fs.existsSync(libasan);
const haveValgrind = spawnSync("valgrind", ["--version"]).status === 0;
const ASAN_DIR = path.join(ROOT, ".cache/native-asan");

afterEach(cleanupMemfs);

function expectCode(f: () => unknown, want: string): void {
  let got = "ok";
  try {
    f();
  } catch (e) {
    got = (e as NodeJS.ErrnoException).code ?? String(e);
  }
  expect(got).toBe(want);
}

/** Exercises every op and the awkward paths: exceptions, GC'd requests, double replies,
 * async replies, and finally an unmount while a request is still waiting for JS. */
async function workload(m: Memfs, scale: number): Promise<void> {
  const p = (...n: string[]): string => path.join(m.mnt, ...n);
  const big = crypto.randomBytes(2 << 20);
  fs.writeFileSync(p("big"), big);
  expect(fs.readFileSync(p("big")).equals(big)).toBe(true);
  fs.truncateSync(p("big"), 12345);
  expect(fs.statSync(p("big")).size).toBe(12345);
  expect(run("fallocate", ["-l", "100000", p("big")]).status).toBe(0);
  fs.chmodSync(p("big"), 0o600);
  fs.utimesSync(p("big"), 1, 2);
  fs.mkdirSync(p("dir"));
  for (let i = 0; i < scale; i++) fs.writeFileSync(p("dir", `file-${i}-${"y".repeat(i % 60)}`), String(i));
  expect(fs.readdirSync(p("dir")).length).toBe(scale);
  for (let i = 0; i < scale; i += 2)
    fs.renameSync(p("dir", `file-${i}-${"y".repeat(i % 60)}`), p("dir", `r${i}`));
  fs.renameSync(p("dir", "r0"), p("dir", "r2")); // over an existing name
  fs.linkSync(p("dir", "r4"), p("hard"));
  expect(fs.statSync(p("hard")).nlink).toBe(2);
  fs.symlinkSync("dir/r4", p("sym"));
  expect(fs.readlinkSync(p("sym"))).toBe("dir/r4");
  expect(fs.readFileSync(p("sym"), "utf8")).toBe("4");
  const raw = Buffer.concat([Buffer.from(m.mnt + "/"), Buffer.from([0xff, 0xfe, 0x41])]);
  fs.writeFileSync(raw, "raw");
  expect(fs.readFileSync(raw, "utf8")).toBe("raw");
  const v = crypto.randomBytes(4096);
  expect(run("setfattr", ["-n", "user.big", "-v", "0x" + v.toString("hex"), p("big")]).status).toBe(0);
  expect(run("setfattr", ["-n", "user.small", "-v", "s", p("big")]).status).toBe(0);
  expect(run("getfattr", ["--only-values", "-n", "user.big", p("big")]).stdout.equals(v)).toBe(true);
  expect(run("getfattr", ["-d", p("big")]).stdout.toString()).toContain("user.small");
  const erange = run("python3", [
    "-c",
    "import ctypes,sys; l=ctypes.CDLL(None,use_errno=True); b=ctypes.create_string_buffer(8); print(l.getxattr(sys.argv[1].encode(),b'user.big',b,8), ctypes.get_errno())",
    p("big"),
  ]);
  expect(erange.stdout.toString().trim()).toBe("-1 34");
  expect(run("setfattr", ["-x", "user.small", p("big")]).status).toBe(0);
  expect(fs.statfsSync(m.mnt).bsize).toBe(4096);
  expectCode(() => fs.statSync(p("throw-1")), "EIO");
  expectCode(() => fs.statSync(p("drop-1")), "EIO");
  expectCode(() => fs.statSync(p("double-1")), "ENOENT");
  expect(run("getfattr", ["-n", "user.double", p("big")]).status).not.toBe(0);
  expectCode(() => fs.statSync(p("slow-1")), "ENOENT");
  expectCode(() => fs.statSync(p("micro-1")), "ENOENT");
  for (const n of fs.readdirSync(p("dir"))) fs.unlinkSync(p("dir", n));
  fs.rmdirSync(p("dir"));
  fs.unlinkSync(p("hard"));
  // A request still waiting for JS when the session ends: it gets EIO from the addon, and
  // the late reply from the timer must be dropped quietly.
  const pending = spawn("stat", [p("slow-pending")], { stdio: "ignore" });
  const pendingDone = new Promise<number | null>((r) => pending.on("close", r));
  await new Promise((r) => setTimeout(r, 50));
  const e = await m.stop();
  expect(await pendingDone).not.toBe(0);
  expect(e.code).toBe(0);
  expect(e.exitLine).toBe("ok");
  expect(e.stats!.doubleReplyThrew).toBe(2);
  expect(isMounted(m.mnt)).toBe(false);
}

describe.skipIf(!haveAsan)("AddressSanitizer build", () => {
  beforeAll(() => {
    fs.mkdirSync(ASAN_DIR, { recursive: true });
    for (const f of NATIVE_SOURCES) fs.copyFileSync(path.join(NATIVE_DIR, f), path.join(ASAN_DIR, f));
    nodeGypRebuild(ASAN_DIR, { PERSHOME_ASAN: "1" });
  }, 300_000);

  const asanEnv = (): Record<string, string> => ({
    PERSHOME_FUSE_ADDON: path.join(ASAN_DIR, "build/Release/pershome_fuse.node"),
    LD_PRELOAD: libasan,
    ASAN_OPTIONS: "detect_leaks=0",
  });

  it("the ASan build really is instrumented", () => {
    const ldd = spawnSync("ldd", [path.join(ASAN_DIR, "build/Release/pershome_fuse.node")], {
      encoding: "utf8",
    });
    expect(ldd.stdout).toContain("libasan");
  });

  it("runs the full workload with no AddressSanitizer report", async () => {
    const m = await startMemfs({ env: asanEnv() });
    await workload(m, 500);
    expect(m.stderr()).not.toContain("ERROR: AddressSanitizer");
  }, 180_000);

  it("survives session.unmount() from inside an op, and a throwing init()", async () => {
    const m = await startMemfs({ env: asanEnv() });
    expectCode(() => fs.statSync(path.join(m.mnt, "unmount-now")), "ENOENT");
    const e = await m.exited;
    expect(e.code).toBe(0);
    expect(e.stderr).not.toContain("ERROR: AddressSanitizer");
    const m2 = await startMemfs({ env: { ...asanEnv(), MEMFS_INIT_THROW: "1" } });
    const e2 = await m2.exited;
    expect(e2.exitLine).toMatch(/^init threw/);
    expect(e2.stderr).not.toContain("ERROR: AddressSanitizer");
  }, 60_000);

  it("survives an unmount from outside with no AddressSanitizer report", async () => {
    const m = await startMemfs({ env: asanEnv() });
    fs.writeFileSync(path.join(m.mnt, "f"), "x");
    expect(run("fusermount3", ["-u", m.mnt]).status).toBe(0);
    const e = await m.exited;
    expect(e.code).toBe(0);
    expect(e.exitLine).toBe("ok");
    expect(e.stderr).not.toContain("ERROR: AddressSanitizer");
  }, 60_000);
});

describe.skipIf(!haveValgrind)("valgrind memcheck", () => {
  beforeAll(() => ensureAddon(), 300_000);

  it("finds no memory errors in the addon or libfuse", async (ctx) => {
    const supp = path.join(ROOT, ".cache/native-valgrind.supp");
    fs.mkdirSync(path.dirname(supp), { recursive: true });
    // V8's conservative stack scan reads uninitialised stack words by design.
    fs.writeFileSync(
      supp,
      "{\n  v8-conservative-stack-scan\n  Memcheck:Cond\n  fun:*IteratePointersInStack*\n}\n",
    );
    const started = Date.now();
    let m: Memfs;
    try {
      m = await startMemfs({
        env: { PERSHOME_FUSE_ADDON: ADDON },
        wrapper: ["valgrind", "-q", `--suppressions=${supp}`],
        readyTimeoutMs: 60_000,
      });
    } catch (e) {
      if (Date.now() - started >= 60_000) ctx.skip(); // too slow on this machine: not cheap
      throw e;
    }
    await workload(m, 50);
    // Node itself is not valgrind-clean everywhere; fail on any report that touches our code.
    const reports = m
      .stderr()
      .split(/\n==\d+== \n/)
      .filter((b) => /==\d+== {4}(at|by) /.test(b));
    const ours = reports.filter((b) => /pershome_fuse|libfuse3|fuse_ll\.c/.test(b));
    expect(ours).toEqual([]);
  }, 180_000);
});
