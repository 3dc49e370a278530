/**
 * prefetchFolder / prefetchWait / prefetchStats (src/native/prefetch.c), called in-process on
 * real folders: it reads what it is told and lists what is there, what a folder read ahead
 * costs is bounded (entries, subfolders, queue), its arguments are checked, and the wait
 * leaves nothing open. What it buys: docs/benchmarks.md "Seventeenth round";
 * what the layer does with it, and a hostile stick: test/posix/read-ahead.test.ts.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prefetchFolder, prefetchStats, prefetchWait } from "../../src/native/index.js";

type Stats = ReturnType<typeof prefetchStats>;

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "pershome-prefetch-"));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** stats once `done` holds (the threads count as they go) */
async function statsWhen(done: (s: Stats) => boolean): Promise<Stats> {
  for (let i = 0; i < 200; i++) {
    const s = prefetchStats();
    if (done(s)) return s;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`prefetch never got there: ${JSON.stringify(prefetchStats())}`);
}

/** reads folder `d` ahead and gives what that one folder added to the counters */
async function prefetchDelta(d: string, files: string, subPrefix: string): Promise<Stats> {
  const before = prefetchStats();
  prefetchFolder(d, files, subPrefix);
  const s = await statsWhen((x) => x.folders === before.folders + 1);
  const delta = { ...s };
  for (const k of Object.keys(s) as (keyof Stats)[]) delta[k] = s[k] - before[k];
  return delta;
}

const openInDir = (): number =>
  fs.readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir);
    } catch {
      return false;
    }
  }).length;

describe("prefetchFolder", () => {
  it("reads the files named, whole, looks at each entry and lists each subfolder", async () => {
    const d = path.join(dir, "small");
    fs.mkdirSync(d);
    for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(d, `f${i}`), "x");
    for (let i = 0; i < 7; i++) fs.mkdirSync(path.join(d, `sub${i}`));
    fs.writeFileSync(path.join(d, "sub3", "log.x"), "1234567"); // a subfolder's log
    fs.writeFileSync(path.join(d, "sub3", "other"), "not read");
    fs.mkdirSync(path.join(d, "sub3", "log.dir")); // a folder is not read
    fs.writeFileSync(path.join(d, "log.a"), Buffer.alloc(200_000, 7)); // more than one read
    fs.writeFileSync(path.join(d, "log.b"), "short");
    fs.writeFileSync(path.join(d, "log.c"), "not named");
    const s = await prefetchDelta(d, "log.a/log.b/missing/sub0", "log.");
    expect(s.entries).toBe(310);
    expect(s.bytes, "log.a, log.b and sub3/log.x; not a folder, nor what is missing").toBe(200_012);
    expect(s.listed).toBe(7);
  });

  it("reads at most 1 MiB of a file and 8 MiB for a folder", async () => {
    const d = path.join(dir, "heavy");
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, "log.a"), Buffer.alloc(3 << 20, 1));
    for (let i = 0; i < 12; i++) {
      fs.mkdirSync(path.join(d, `s${i}`));
      fs.writeFileSync(path.join(d, `s${i}`, "log.a"), Buffer.alloc(1 << 20, 2));
    }
    const s = await prefetchDelta(d, "log.a", "log.");
    expect(s.bytes).toBe(8 << 20);
    expect(s.listed, "listing goes on past the read budget").toBe(12);
  });

  it("lists at most 256 subfolders of a folder", async () => {
    const d = path.join(dir, "wide");
    fs.mkdirSync(d);
    for (let i = 0; i < 300; i++) fs.mkdirSync(path.join(d, `s${i}`));
    const s = await prefetchDelta(d, "", "");
    expect(s.listed).toBe(256);
  });

  it("stops at 4,096 entries in a folder", async () => {
    const d = path.join(dir, "big");
    fs.mkdirSync(d);
    for (let i = 0; i < 5000; i++) fs.writeFileSync(path.join(d, `f${i}`), "");
    const s = await prefetchDelta(d, "", "");
    expect(s.entries).toBe(4096);
  });

  it("drops folders beyond its queue (256) and the wait leaves nothing open", async () => {
    const d = path.join(dir, "many");
    fs.mkdirSync(d);
    for (let i = 0; i < 2000; i++) fs.writeFileSync(path.join(d, `f${i}`), "");
    fs.writeFileSync(path.join(d, "log.a"), "x");
    const before = prefetchStats();
    for (let i = 0; i < 600; i++) prefetchFolder(d, "log.a", "");
    prefetchWait();
    const after = prefetchStats();
    expect(after.dropped - before.dropped, "queued beyond 256 while 2 threads work").toBeGreaterThan(0);
    expect(after.folders - before.folders, "those queued at the wait are forgotten").toBeLessThan(600);
    expect(openInDir()).toBe(0);
    // still working after a wait
    prefetchFolder(d, "log.a", "");
    await statsWhen((x) => x.folders === after.folders + 1);
  });

  it("ends quietly at a path that is not a folder, or gone", async () => {
    fs.writeFileSync(path.join(dir, "plain"), "x");
    fs.symlinkSync(path.join(dir, "small"), path.join(dir, "link"));
    const before = prefetchStats();
    for (const p of ["plain", "link", "gone"]) prefetchFolder(path.join(dir, p), "log.a", "");
    prefetchFolder(path.join(dir, "small"), "", "");
    const s = await statsWhen((x) => x.folders === before.folders + 1);
    expect(s.entries - before.entries, "only the real folder; the link to it is not followed").toBe(310);
  });

  it("refuses arguments that are not byte-string paths", () => {
    const call = prefetchFolder as (...a: unknown[]) => void;
    expect(() => call()).toThrow(TypeError);
    expect(() => call(dir)).toThrow(TypeError);
    expect(() => call(dir, "")).toThrow(TypeError);
    expect(() => call(dir, "", 3)).toThrow(TypeError);
    expect(() => call(dir, "", "p".repeat(100))).toThrow(TypeError);
    expect(() => call(3, "log.a")).toThrow(TypeError);
    expect(() => call("", "log.a")).toThrow(TypeError);
    expect(() => call(dir, 3)).toThrow(TypeError);
    expect(() => call(`${dir}\0x`, "log.a")).toThrow(/NUL/);
    expect(() => call(dir, "p".repeat(2000))).toThrow(TypeError);
  });
});
