// user.* extended attributes, kept in the directory's log.

import { mkdir, writeFile, rename } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { useLayer } from "../support/fixture.js";
import { lowerKinds } from "../support/lower.js";
import { errnoOf, pyGetxattr, pyListxattr, sys } from "../support/sys.js";

const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;

describe.each(lowerKinds())("extended attributes on a %s lower", (kind) => {
  const t = useLayer(kind, "xattrs");

  it("sets, lists, reads and removes user.* attributes, and keeps them across a remount", async () => {
    const d = await t.dir("basic");
    const f = t.p(d, "f");
    await writeFile(f, "x");
    await sys("setxattr", f, "user.mime_type", "text/plain");
    await sys("setxattr", f, "user.empty", "");
    await sys("setxattr", f, "user.gone", "soon");
    await sys("removexattr", f, "user.gone");
    await t.remount();
    expect(await pyListxattr(f)).toEqual(["user.empty", "user.mime_type"]);
    expect((await pyGetxattr(f, "user.mime_type")).toString()).toBe("text/plain");
    expect((await pyGetxattr(f, "user.empty")).length).toBe(0);
    expect(await errnoOf("getxattr", f, "user.gone")).toBe("ENODATA");
  });

  it("keeps binary values and a 4000-byte value exactly", async () => {
    const d = await t.dir("binary");
    const f = t.p(d, "f");
    await writeFile(f, "x");
    const bin = Buffer.from([0, 1, 2, 0xff, 0xfe, 10, 13, 0]);
    const big = Buffer.alloc(4000, 0).map((_, i) => (i * 7) & 0xff);
    await sys("setxattr", f, "user.bin", bin);
    await sys("setxattr", f, "user.big", Buffer.from(big));
    await t.remount();
    expect((await pyGetxattr(f, "user.bin")).toString("hex")).toBe(bin.toString("hex"));
    expect((await pyGetxattr(f, "user.big")).equals(Buffer.from(big))).toBe(true);
  });

  it("honours XATTR_CREATE and XATTR_REPLACE", async () => {
    const d = await t.dir("flags");
    const f = t.p(d, "f");
    await writeFile(f, "x");
    expect(await errnoOf("setxattr", f, "user.a", "1", XATTR_REPLACE)).toBe("ENODATA");
    expect(await errnoOf("setxattr", f, "user.a", "1", XATTR_CREATE)).toBe("OK");
    expect(await errnoOf("setxattr", f, "user.a", "2", XATTR_CREATE)).toBe("EEXIST");
    expect(await errnoOf("setxattr", f, "user.a", "3", XATTR_REPLACE)).toBe("OK");
    expect((await pyGetxattr(f, "user.a")).toString()).toBe("3");
    expect(await errnoOf("removexattr", f, "user.none")).toBe("ENODATA");
  });

  it("refuses namespaces other than user.* (trusted, security) even to root", async () => {
    const d = await t.dir("ns");
    const f = t.p(d, "f");
    await writeFile(f, "x");
    for (const name of ["trusted.secret", "security.evil"]) {
      expect(["EOPNOTSUPP", "ENOTSUP", "EPERM"], name).toContain(await errnoOf("setxattr", f, name, "v"));
      expect(["EOPNOTSUPP", "ENOTSUP"], name).toContain(await errnoOf("removexattr", f, name));
    }
    // not supported, rather than "not set": ls -l then stops asking every file for its
    // SELinux label and ACLs (two requests a file otherwise)
    for (const name of ["security.selinux", "system.nfs4_acl", "trusted.secret"])
      expect(["EOPNOTSUPP", "ENOTSUP"], name).toContain(await errnoOf("getxattr", f, name));
    expect(await pyListxattr(f)).toEqual([]);
  });

  it("keeps attributes on directories, and on a file that was renamed", async () => {
    const d = await t.dir("dir-and-rename");
    await mkdir(t.p(d, "sub"));
    await sys("setxattr", t.p(d, "sub"), "user.tag", "folder");
    await writeFile(t.p(d, "sub", "old"), "x");
    await sys("setxattr", t.p(d, "sub", "old"), "user.tag", "file");
    await rename(t.p(d, "sub", "old"), t.p(d, "new:name"));
    await rename(t.p(d, "sub"), t.p(d, "Sub2"));
    await t.remount();
    expect((await pyGetxattr(t.p(d, "Sub2"), "user.tag")).toString()).toBe("folder");
    expect((await pyGetxattr(t.p(d, "new:name"), "user.tag")).toString()).toBe("file");
  });

  it("does not carry attributes over to a new file made under a removed file's name", async () => {
    const d = await t.dir("reuse");
    await writeFile(t.p(d, "f"), "x");
    await sys("setxattr", t.p(d, "f"), "user.old", "1");
    await sys("unlink", t.p(d, "f"));
    await writeFile(t.p(d, "f"), "new");
    expect(await pyListxattr(t.p(d, "f"))).toEqual([]);
    await t.remount();
    expect(await pyListxattr(t.p(d, "f"))).toEqual([]);
  });
});
