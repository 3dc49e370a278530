/**
 * closeLater / waitForCloses (src/native/closer.c): descriptors closed on the addon's own
 * threads, more of them than its queue holds, failures reported at the wait. What it buys on
 * vfat mounted with `flush` (a close there sleeps 0.1 s) is shown in the micro-VM
 * (test/vfat/posix-on-vfat.test.ts, docs/benchmarks.md "Thirteenth round").
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hasCode } from "../../src/fs/errors.js";
import { closeLater, closesPending, waitForCloses } from "../../src/native/index.js";

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "pershome-closer-"));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** the process's open descriptors that point into `dir` */
const openInDir = (): number =>
  fs.readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir);
    } catch {
      return false; // closed meanwhile (the readdir's own descriptor)
    }
  }).length;

describe("closeLater", () => {
  it("closes every descriptor, more than its queue holds (1,024), and the data stays", () => {
    const n = 1500;
    for (let i = 0; i < n; i++) {
      const fd = fs.openSync(path.join(dir, `f${i}`), "w");
      fs.writeSync(fd, `file ${i}`);
      closeLater(fd);
      if (i === 0) expect(openInDir()).toBeLessThanOrEqual(1);
    }
    expect(() => waitForCloses()).not.toThrow();
    expect(closesPending()).toBe(0);
    expect(openInDir()).toBe(0);
    expect(fs.readFileSync(path.join(dir, `f${n - 1}`), "utf8")).toBe(`file ${n - 1}`);
    expect(() => waitForCloses()).not.toThrow(); // nothing queued: returns at once
  });

  it("reports a close that failed at the next wait, once", () => {
    const fd = 1_000_000; // above any descriptor limit: EBADF on the closer's thread (a
    // number closed just before could be taken by another thread of this process meanwhile)
    closeLater(fd);
    let err: unknown;
    try {
      waitForCloses();
    } catch (e) {
      err = e;
    }
    expect(hasCode(err, "EBADF")).toBe(true);
    expect(String(err)).toContain(`descriptor ${fd}`);
    expect(() => waitForCloses()).not.toThrow();
  });

  it("refuses what is not a descriptor", () => {
    expect(() => closeLater(-1)).toThrow(/descriptor/);
    expect(() => closeLater("3" as unknown as number)).toThrow(/descriptor/);
  });
});
