// What a stick must never give: other users' ownership, device nodes, setuid privileges.

import { copyFile, chmod, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { useLayer } from "../support/fixture.js";
import { lowerKinds } from "../support/lower.js";
import { mountAt } from "../support/mountinfo.js";
import { NOBODY, run } from "../support/run.js";
import { S_IFBLK, S_IFCHR, errnoOf, pyStat } from "../support/sys.js";

describe.each(lowerKinds())("security on a %s lower", (kind) => {
  const t = useLayer(kind, "security", { mount: { allowOther: true } });

  it("refuses chown to another user or group with EPERM, even to root", async () => {
    const d = await t.dir("chown");
    await writeFile(t.p(d, "f"), "x");
    expect(await errnoOf("chown", t.p(d, "f"), 1000, -1)).toBe("EPERM");
    expect(await errnoOf("chown", t.p(d, "f"), -1, 1000)).toBe("EPERM");
    expect(await errnoOf("chown", t.p(d, "f"), NOBODY.uid, NOBODY.gid)).toBe("EPERM");
    await symlink("f", t.p(d, "l"));
    expect(await errnoOf("chown", t.p(d, "l"), 1000, 1000, false)).toBe("EPERM");
    const s = await pyStat(t.p(d, "f"));
    expect([s.uid, s.gid]).toEqual([0, 0]);
  });

  it("allows chown to the owner it already has (a no-op, as tar and cp -a do)", async () => {
    const d = await t.dir("chown-self");
    await writeFile(t.p(d, "f"), "x");
    expect(await errnoOf("chown", t.p(d, "f"), 0, 0)).toBe("OK");
    expect(await errnoOf("chown", t.p(d, "f"), -1, -1)).toBe("OK");
  });

  it("refuses to make character and block devices (EPERM), and leaves nothing behind", async () => {
    const d = await t.dir("mknod");
    expect(await errnoOf("mknod", t.p(d, "zero"), S_IFCHR | 0o666, 1, 5)).toBe("EPERM");
    expect(await errnoOf("mknod", t.p(d, "disk"), S_IFBLK | 0o660, 8, 0)).toBe("EPERM");
    expect(await errnoOf("lstat", t.p(d, "zero"))).toBe("ENOENT");
    expect(await errnoOf("lstat", t.p(d, "disk"))).toBe("ENOENT");
  });

  it("is mounted nosuid and nodev (per /proc/self/mountinfo)", () => {
    const m = mountAt(t.mnt);
    expect(m, "the mount is listed").toBeDefined();
    expect(m!.fsType).toMatch(/^fuse/);
    expect(m!.mountOptions).toEqual(expect.arrayContaining(["nosuid", "nodev"]));
  });

  it("does not give a setuid-root program on the mount root's privileges", async () => {
    const d = await t.dir("setuid");
    // Control: the same setuid copy of id(1) off the mount does run as root, so the probe works.
    const control = join(t.lower.work, "id-setuid");
    await copyFile("/usr/bin/id", control);
    await chmod(control, 0o4755);
    const c = await run(control, ["-u"], { as: NOBODY });
    expect(c.stdout.trim(), "control: setuid works off the mount").toBe("0");

    await copyFile("/usr/bin/id", t.p(d, "id"));
    const chmodErr = await errnoOf("chmod", t.p(d, "id"), 0o4755);
    expect(["OK", "EPERM"]).toContain(chmodErr);
    const r = await run(t.p(d, "id"), ["-u"], { as: NOBODY });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim(), "euid on the mount").toBe(String(NOBODY.uid));
  });
});
