/**
 * fsyncAll (src/native/fsync_many.c): every descriptor fsync'd, the first failure thrown as
 * fs.fsyncSync would. What it buys on vfat (fewer writes) is measured
 * in the micro-VM (docs/benchmarks.md, "Twelfth round"); test/vfat checks the durability.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fsyncAll } from "../../src/native/index.js";
import { hasCode } from "../../src/fs/errors.js";

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "pershome-fsync-many-"));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("fsyncAll", () => {
  it("fsyncs many descriptors, files and folders, and returns", () => {
    const fds = Array.from({ length: 40 }, (_, i) => {
      const fd = fs.openSync(path.join(dir, `f${i}`), "w");
      fs.writeSync(fd, `file ${i}`);
      return fd;
    });
    fds.push(fs.openSync(dir, "r"));
    try {
      expect(() => fsyncAll(fds)).not.toThrow();
      expect(() => fsyncAll([])).not.toThrow();
    } finally {
      for (const fd of fds) fs.closeSync(fd);
    }
    expect(fs.readFileSync(path.join(dir, "f39"), "utf8")).toBe("file 39");
  });

  it("throws the first failure with its code, as fs.fsyncSync would", () => {
    const good = fs.openSync(path.join(dir, "g"), "w");
    const closed = fs.openSync(path.join(dir, "h"), "w");
    fs.closeSync(closed);
    try {
      let err: unknown;
      try {
        fsyncAll([good, closed, good]);
      } catch (e) {
        err = e;
      }
      expect(hasCode(err, "EBADF")).toBe(true);
      expect(String(err)).toContain(`descriptor ${closed}`);
    } finally {
      fs.closeSync(good);
    }
  });
});
