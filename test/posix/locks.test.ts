// flock(2) and fcntl(2) record locks between two processes on the mount.

import { writeFile } from "node:fs/promises";
import { execa, type ResultPromise } from "execa";
import { afterEach, describe, expect, it } from "vitest";
import { useLayer } from "../support/fixture.js";
import { lowerKinds } from "../support/lower.js";
import { PYTHON, python, waitFor } from "../support/run.js";

/** A python process that takes a lock, says "locked", and holds it until told "release". */
const HOLDER = `import fcntl, os, sys
kind, path = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDWR)
if kind == "flock":
    fcntl.flock(fd, fcntl.LOCK_EX)
else:
    fcntl.lockf(fd, fcntl.LOCK_EX, 10, 0)   # bytes 0..9
print("locked", flush=True)
sys.stdin.readline()
os.close(fd)
print("released", flush=True)`;

/** Tries a lock without waiting; prints "got" or the errno name. */
const PROBE = `import errno, fcntl, os, sys
kind, path = sys.argv[1], sys.argv[2]
start, length = int(sys.argv[3]), int(sys.argv[4])
fd = os.open(path, os.O_RDWR)
try:
    if kind == "flock":
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    elif kind == "flock-shared":
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    else:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, length, start)
    print("got")
except OSError as e:
    print(errno.errorcode[e.errno])`;

describe.each(lowerKinds())("locks on a %s lower", (kind) => {
  const t = useLayer(kind, "locks");
  const holders: ResultPromise[] = [];
  afterEach(() => {
    for (const h of holders.splice(0)) h.kill("SIGKILL");
  });

  async function hold(lockKind: "flock" | "fcntl", path: string): Promise<{ release: () => Promise<void> }> {
    const p = execa(PYTHON, ["-c", HOLDER, lockKind, path], {
      stdin: "pipe",
      reject: false,
      timeout: 60_000,
    });
    holders.push(p);
    let out = "";
    p.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    const ok = await waitFor(() => out.includes("locked"), 20_000);
    if (!ok)
      throw new Error(`lock holder did not get the ${lockKind} lock; stderr: ${String((await p).stderr)}`);
    return {
      release: async () => {
        p.stdin?.write("release\n");
        await waitFor(() => out.includes("released"), 20_000);
        await p;
      },
    };
  }

  const probe = async (lockKind: string, path: string, start = 0, length = 0): Promise<string> =>
    (await python(PROBE, [lockKind, path, String(start), String(length)])).stdout.trim();

  it("flock: a second process cannot take the lock while it is held, and can after", async () => {
    const d = await t.dir("flock");
    const f = t.p(d, "lockfile");
    await writeFile(f, "");
    const h = await hold("flock", f);
    expect(["EWOULDBLOCK", "EAGAIN"]).toContain(await probe("flock", f));
    expect(["EWOULDBLOCK", "EAGAIN"]).toContain(await probe("flock-shared", f));
    await h.release();
    expect(await probe("flock", f)).toBe("got");
  });

  it("fcntl: a held byte range blocks an overlapping lock but not a disjoint one", async () => {
    const d = await t.dir("fcntl");
    const f = t.p(d, "db");
    await writeFile(f, Buffer.alloc(100));
    const h = await hold("fcntl", f);
    expect(["EAGAIN", "EACCES"]).toContain(await probe("fcntl", f, 5, 10));
    expect(await probe("fcntl", f, 20, 10)).toBe("got");
    await h.release();
    expect(await probe("fcntl", f, 5, 10)).toBe("got");
  });

  it("fcntl: F_GETLK reports the holder's pid", async () => {
    const d = await t.dir("getlk");
    const f = t.p(d, "db");
    await writeFile(f, Buffer.alloc(16));
    const p = execa(PYTHON, ["-c", HOLDER, "fcntl", f], { stdin: "pipe", reject: false, timeout: 60_000 });
    holders.push(p);
    let out = "";
    p.stdout?.on("data", (dd: Buffer) => (out += dd.toString()));
    expect(await waitFor(() => out.includes("locked"), 20_000)).toBeTruthy();
    const r = await python(
      `import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
lk = struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 10, 0)
res = fcntl.fcntl(fd, fcntl.F_GETLK, lk)
ltype, whence, start, length, pid = struct.unpack("hhqqi", res)
print(ltype == fcntl.F_WRLCK, pid)`,
      [f],
    );
    expect(r.stdout.trim()).toBe(`True ${p.pid}`);
    p.stdin?.write("release\n");
    await p;
  });
});
