// Reading and writing: offsets, truncate, O_APPEND, holes, fallocate, mmap, fsync, unlinked
// open files, and a large sequential write read back by checksum.

import { createHash } from "node:crypto";
import { open, readFile, readdir, stat, truncate, unlink, writeFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { useLayer } from "../support/fixture.js";
import { lowerKinds } from "../support/lower.js";
import { python } from "../support/run.js";
import { traceDuring } from "../support/strace.js";
import { errnoOf, perms, pyRead, sys } from "../support/sys.js";

describe.each(lowerKinds())("file I/O on a %s lower", (kind) => {
  const t = useLayer(kind, "io", { sizeMb: 512 });

  it("writes at offsets and reads back exactly (pwrite/pread)", async () => {
    const d = await t.dir("pwrite");
    const fh = await open(t.p(d, "f"), "w+");
    try {
      await fh.write(Buffer.from("0123456789"), 0, 10, 0);
      await fh.write(Buffer.from("AB"), 0, 2, 4);
      await fh.write(Buffer.from("Z"), 0, 1, 12); // leaves a 2-byte hole
      const buf = Buffer.alloc(13);
      const { bytesRead } = await fh.read(buf, 0, 13, 0);
      expect(bytesRead).toBe(13);
      expect(buf).toEqual(Buffer.from("0123AB6789\0\0Z"));
    } finally {
      await fh.close();
    }
    await t.remount();
    expect(await readFile(t.p(d, "f"))).toEqual(Buffer.from("0123AB6789\0\0Z"));
  });

  it("truncates down and up (the new part reads as zeros), by path and by descriptor", async () => {
    const d = await t.dir("truncate");
    await writeFile(t.p(d, "f"), "abcdefghij");
    await truncate(t.p(d, "f"), 4);
    expect(await readFile(t.p(d, "f"), "utf8")).toBe("abcd");
    await truncate(t.p(d, "f"), 8);
    expect(await readFile(t.p(d, "f"))).toEqual(Buffer.from("abcd\0\0\0\0"));
    const fh = await open(t.p(d, "f"), "r+");
    await fh.truncate(2);
    await fh.close();
    await t.remount();
    expect(await readFile(t.p(d, "f"), "utf8")).toBe("ab");
  });

  it("truncates on open with O_TRUNC, and O_EXCL fails on an existing file", async () => {
    const d = await t.dir("otrunc");
    await writeFile(t.p(d, "f"), "long old content");
    await writeFile(t.p(d, "f"), "new");
    expect(await readFile(t.p(d, "f"), "utf8")).toBe("new");
    await expect(writeFile(t.p(d, "f"), "x", { flag: "wx" })).rejects.toMatchObject({ code: "EEXIST" });
  });

  it("appends from two writers with O_APPEND without losing a record", async () => {
    const d = await t.dir("append");
    await writeFile(t.p(d, "log"), "");
    const r = await python(
      `import os, sys
p = sys.argv[1]
pids = []
for w in "ab":
    pid = os.fork()
    if pid == 0:
        fd = os.open(p, os.O_WRONLY | os.O_APPEND)
        for i in range(300):
            os.write(fd, ("%s%04d\\n" % (w, i)).encode())
        os.close(fd)
        os._exit(0)
    pids.append(pid)
for pid in pids: os.waitpid(pid, 0)`,
      [t.p(d, "log")],
      { timeoutMs: 120_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    await t.remount();
    const lines = (await readFile(t.p(d, "log"), "utf8")).split("\n").filter(Boolean);
    expect(lines).toHaveLength(600);
    expect(new Set(lines).size).toBe(600);
    expect(lines.every((l) => /^[ab]\d{4}$/.test(l))).toBe(true);
  }, 180_000);

  it("reads a hole as zeros: a byte written 10 MiB in gives a 10 MiB file", async () => {
    const d = await t.dir("sparse");
    const fh = await open(t.p(d, "f"), "w");
    await fh.write(Buffer.from("!"), 0, 1, 10 * 1024 * 1024);
    await fh.close();
    await t.remount();
    expect((await stat(t.p(d, "f"))).size).toBe(10 * 1024 * 1024 + 1);
    const r = await python(
      `import sys
with open(sys.argv[1], "rb") as f: data = f.read()
print(data[:-1].count(0), data[-1:].decode())`,
      [t.p(d, "f")],
    );
    expect(r.stdout.trim()).toBe(`${10 * 1024 * 1024} !`);
  }, 120_000);

  it("extends a file with posix_fallocate (zeros, new size)", async () => {
    const d = await t.dir("fallocate");
    await writeFile(t.p(d, "f"), "head");
    await sys("fallocate", t.p(d, "f"), 0, 0, 65536);
    expect((await stat(t.p(d, "f"))).size).toBe(65536);
    const data = await readFile(t.p(d, "f"));
    expect(data.subarray(0, 4).toString()).toBe("head");
    expect(data.subarray(4).every((b) => b === 0)).toBe(true);
  });

  it("answers a hole-punching fallocate with EOPNOTSUPP or does it right (never corrupts)", async () => {
    const d = await t.dir("punch");
    await writeFile(t.p(d, "f"), Buffer.alloc(8192, 0x61));
    const e = await errnoOf("fallocate", t.p(d, "f"), 3 /* PUNCH_HOLE|KEEP_SIZE */, 0, 4096);
    const data = await readFile(t.p(d, "f"));
    expect(data.length).toBe(8192);
    if (e === "OK") {
      expect(data.subarray(0, 4096).every((b) => b === 0)).toBe(true);
    } else {
      expect(["EOPNOTSUPP", "ENOTSUP"]).toContain(e);
      expect(data.every((b) => b === 0x61)).toBe(true);
    }
    expect(data.subarray(4096).every((b) => b === 0x61)).toBe(true);
  });

  it("writes through a shared mmap and reads it back with read(), also after a remount", async () => {
    const d = await t.dir("mmap");
    await writeFile(t.p(d, "f"), Buffer.alloc(16384, 0x2e));
    await sys("mmap_write", t.p(d, "f"), 5000, "written through mmap");
    const viaRead = await readFile(t.p(d, "f"));
    expect(viaRead.subarray(5000, 5020).toString()).toBe("written through mmap");
    await t.remount();
    const after = await pyRead(t.p(d, "f"));
    expect(after.subarray(5000, 5020).toString()).toBe("written through mmap");
    expect(after.length).toBe(16384);
    expect(after.subarray(0, 5000).every((b) => b === 0x2e)).toBe(true);
  });

  it("sees a write() in an mmap of the same file", async () => {
    const d = await t.dir("mmap-read");
    await writeFile(t.p(d, "f"), "before-before");
    const r = await python(
      `import mmap, os, sys
p = sys.argv[1]
fd = os.open(p, os.O_RDWR)
m = mmap.mmap(fd, 13, mmap.MAP_SHARED, mmap.PROT_READ)
os.pwrite(fd, b"AFTER", 0)
print(m[:13].decode())`,
      [t.p(d, "f")],
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe("AFTERe-before");
  });

  it("returns success from fsync, fdatasync and a directory fsync", async () => {
    const d = await t.dir("fsync");
    const r = await python(
      `import os, sys
d = sys.argv[1]
fd = os.open(os.path.join(d, "f"), os.O_WRONLY | os.O_CREAT, 0o600)
os.write(fd, b"data")
os.fsync(fd); os.fdatasync(fd); os.close(fd)
dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY); os.fsync(dfd); os.close(dfd)
print("ok")`,
      [t.p(d)],
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe("ok");
  });

  it("syncs a new folder once when its first file is fsync'd: the file, the folder's first log, the folder", async () => {
    const d = await t.dir("first-fsync");
    const trace = await traceDuring(t.layer.pid, ["fsync", "fdatasync"], t.lower.work, async () => {
      const r = await python(
        `import os, sys
fd = os.open(os.path.join(sys.argv[1], "f"), os.O_WRONLY | os.O_CREAT, 0o600)
os.write(fd, b"data"); os.fsync(fd); os.close(fd)`,
        [t.p(d)],
      );
      expect(r.code, r.stderr).toBe(0);
    });
    const all = trace.lines.join("\n");
    expect(trace.matching(/^f(data)?sync$/, `<${t.low(d, "f")}>`), all).toHaveLength(1);
    expect(trace.matching(/^f(data)?sync$/, ".pershome.meta."), all).toHaveLength(1);
    // one fsync of the folder makes both new entries durable (the log's and the file's); a
    // USB stick answers each with a cache flush
    expect(trace.matching(/^fsync$/, `<${t.low(d)}>`), all).toHaveLength(1);
    await t.remount();
    expect(perms((await stat(t.p(d, "f"))).mode)).toBe("0600");
  });

  it("keeps an unlinked open file readable and writable until closed, then leaves nothing", async () => {
    const d = await t.dir("unlinked");
    const fh = await open(t.p(d, "f"), "w+");
    await fh.write("still here");
    await unlink(t.p(d, "f"));
    expect(await readdir(t.p(d))).toEqual([]);
    await fh.write(" and growing", 10);
    const buf = Buffer.alloc(64);
    const { bytesRead } = await fh.read(buf, 0, 64, 0);
    expect(buf.subarray(0, bytesRead).toString()).toBe("still here and growing");
    await fh.close();
    await t.unmount();
    expect((await readdir(t.low(d))).filter((n) => !n.startsWith(".pershome"))).toEqual([]);
    await t.mount();
  });

  it("writes 64 MiB sequentially and reads the same bytes back after a remount", async () => {
    const d = await t.dir("large");
    const r = await python(
      `import hashlib, os, sys
h = hashlib.sha256()
chunk = bytearray(os.urandom(1 << 20))
with open(sys.argv[1], "wb") as f:
    for i in range(64):
        chunk[0:8] = i.to_bytes(8, "little")
        f.write(chunk); h.update(chunk)
    f.flush(); os.fsync(f.fileno())
print(h.hexdigest())`,
      [t.p(d, "big.bin")],
      { timeoutMs: 300_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    const want = r.stdout.trim();
    const sum = async (): Promise<string> =>
      createHash("sha256")
        .update(await readFile(t.p(d, "big.bin")))
        .digest("hex");
    expect(await sum()).toBe(want);
    await t.remount();
    expect((await stat(t.p(d, "big.bin"))).size).toBe(64 << 20);
    expect(await sum()).toBe(want);
  }, 400_000);

  it("sees a write through one descriptor from another descriptor at once", async () => {
    const d = await t.dir("coherent");
    await writeFile(t.p(d, "f"), "");
    const w = await open(t.p(d, "f"), "r+");
    const r = await open(t.p(d, "f"), "r");
    try {
      await w.write("visible", 0);
      const buf = Buffer.alloc(16);
      const { bytesRead } = await r.read(buf, 0, 16, 0);
      expect(buf.subarray(0, bytesRead).toString()).toBe("visible");
      expect((await r.stat()).size).toBe(7);
    } finally {
      await w.close();
      await r.close();
    }
  });
});
