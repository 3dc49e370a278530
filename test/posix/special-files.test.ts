// Fifos and sockets: an empty file on the stick + a record of the kind (docs/format.md).
// Device nodes are refused (see security.test.ts).

import { lstat, readFile, readdir, rename, unlink } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { useLayer } from "../support/fixture.js";
import { lowerKinds } from "../support/lower.js";
import { python } from "../support/run.js";
import { fileType, perms, pyLstat, sys } from "../support/sys.js";

describe.each(lowerKinds())("special files on a %s lower", (kind) => {
  const t = useLayer(kind, "special");

  it("makes a fifo that stays a fifo (with its mode) across a remount", async () => {
    const d = await t.dir("fifo");
    await sys("mkfifo", t.p(d, "pipe"), 0o640);
    expect(fileType((await pyLstat(t.p(d, "pipe"))).mode)).toBe("fifo");
    await t.remount();
    const s = await pyLstat(t.p(d, "pipe"));
    expect(fileType(s.mode)).toBe("fifo");
    expect(perms(s.mode)).toBe("0640");
  });

  it("carries data through the fifo between two processes", async () => {
    const d = await t.dir("fifo-io");
    await sys("mkfifo", t.p(d, "pipe"), 0o600);
    await t.remount();
    const r = await python(
      `import os, sys
p = sys.argv[1]
if os.fork() == 0:
    with open(p, "w") as w: w.write("through the pipe")
    os._exit(0)
with open(p) as r: print(r.read())
os.wait()`,
      [t.p(d, "pipe")],
      { timeoutMs: 20_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("through the pipe\n");
  });

  it("makes a unix socket node that stays a socket across a remount", async () => {
    const d = await t.dir("sock");
    await sys("bind_socket", t.p(d, "s.sock"));
    expect(fileType((await pyLstat(t.p(d, "s.sock"))).mode)).toBe("socket");
    await t.remount();
    expect(fileType((await pyLstat(t.p(d, "s.sock"))).mode)).toBe("socket");
  });

  it("accepts connections on a socket bound on the mount", async () => {
    const d = await t.dir("sock-io");
    const r = await python(
      `import os, socket, sys
p = sys.argv[1]
srv = socket.socket(socket.AF_UNIX); srv.bind(p); srv.listen(1)
c = socket.socket(socket.AF_UNIX); c.connect(p)
a, _ = srv.accept(); c.sendall(b"hello"); print(a.recv(5).decode())`,
      [t.p(d, "live.sock")],
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("hello\n");
  });

  it("makes a regular file through mknod(S_IFREG)", async () => {
    const d = await t.dir("mknod-reg");
    await sys("mknod", t.p(d, "plain"), 0o100600);
    await t.remount();
    const s = await pyLstat(t.p(d, "plain"));
    expect(fileType(s.mode)).toBe("file");
    expect(perms(s.mode)).toBe("0600");
    expect(s.size).toBe(0);
  });

  it("renames and removes fifos and sockets like files", async () => {
    const d = await t.dir("mv");
    await sys("mkfifo", t.p(d, "p"), 0o644);
    await sys("bind_socket", t.p(d, "s"));
    await rename(t.p(d, "p"), t.p(d, "p:renamed"));
    await rename(t.p(d, "s"), t.p(d, "s:renamed"));
    await t.remount();
    expect(fileType((await pyLstat(t.p(d, "p:renamed"))).mode)).toBe("fifo");
    expect(fileType((await pyLstat(t.p(d, "s:renamed"))).mode)).toBe("socket");
    await unlink(t.p(d, "p:renamed"));
    await unlink(t.p(d, "s:renamed"));
    await t.remount();
    expect(await readdir(t.p(d))).toEqual([]);
  });

  it("stores them as empty plain files on the stick", async () => {
    const d = await t.dir("stored");
    await sys("mkfifo", t.p(d, "pipe"), 0o644);
    await sys("bind_socket", t.p(d, "sock"));
    await t.unmount();
    for (const n of ["pipe", "sock"]) {
      const s = await lstat(t.low(d, n));
      expect(s.isFile(), n).toBe(true);
      expect(s.size, n).toBe(0);
      expect(await readFile(t.low(d, n), "utf8")).toBe("");
    }
    await t.mount();
  });
});
