// Symlinks on a filesystem that has none: a small file holding the target + a record
// (docs/format.md "Special files"). readlink must give back exactly the user's bytes.

import {
  lstat,
  mkdir,
  readFile,
  readdir,
  readlink,
  rename,
  stat,
  symlink,
  unlink,
  writeFile,
} from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { useLayer } from "../support/fixture.js";
import { lowerKinds } from "../support/lower.js";
import { requestsSinceLast } from "../support/mount.js";
import { bpath } from "../support/names.js";
import { fileType, pyLstat, pyReadlink, sys } from "../support/sys.js";

describe.each(lowerKinds())("symlinks on a %s lower", (kind) => {
  const t = useLayer(kind, "symlinks");

  const targets: Record<string, string> = {
    relative: "../sibling/file.txt",
    absolute: "/etc/hostname",
    dangling: "does/not/exist",
    "forbidden-chars": 'a:b*c?d"e<f>g|h\\i',
    "trailing-dot": "dir./name. ",
    "dos-device": "CON",
    "private-use": "x\uF03Ay",
    unicode: "Übersicht/日本語",
    long: "d/".repeat(500) + "end",
  };

  it("gives back each target byte for byte, before and after a remount", async () => {
    const d = await t.dir("targets");
    for (const [name, target] of Object.entries(targets)) await symlink(target, t.p(d, name));
    const read = async (): Promise<Record<string, string>> =>
      Object.fromEntries(
        await Promise.all(Object.keys(targets).map(async (n) => [n, await readlink(t.p(d, n))] as const)),
      );
    expect(await read()).toEqual(targets);
    await t.remount();
    expect(await read()).toEqual(targets);
    for (const n of Object.keys(targets)) expect((await lstat(t.p(d, n))).isSymbolicLink(), n).toBe(true);
  });

  it("keeps a target that is not UTF-8", async () => {
    const d = await t.dir("bytes");
    const target = Buffer.from([0x2e, 0x2e, 0x2f, 0x66, 0xff, 0xfe, 0x80, 0x41]);
    await sys("symlink", target, t.p(d, "l"));
    expect((await pyReadlink(t.p(d, "l"))).toString("hex")).toBe(target.toString("hex"));
    await t.remount();
    expect((await pyReadlink(t.p(d, "l"))).toString("hex")).toBe(target.toString("hex"));
  });

  it("is followed by the kernel: through a link to a file and to a directory", async () => {
    const d = await t.dir("follow");
    await mkdir(t.p(d, "real"));
    await writeFile(t.p(d, "real", "data"), "through the link");
    await symlink("real", t.p(d, "dirlink"));
    await symlink("real/data", t.p(d, "filelink"));
    await t.remount();
    expect(await readFile(t.p(d, "filelink"), "utf8")).toBe("through the link");
    expect(await readdir(t.p(d, "dirlink"))).toEqual(["data"]);
    await writeFile(t.p(d, "dirlink", "new"), "made via link");
    expect(await readFile(t.p(d, "real", "new"), "utf8")).toBe("made via link");
    expect((await stat(t.p(d, "filelink"))).isFile()).toBe(true);
  });

  it("stores the target as a small plain file on the stick, readable elsewhere", async () => {
    const d = await t.dir("stored");
    await symlink("../docs/report.odt", t.p(d, "report-link"));
    await t.unmount();
    const st = await lstat(t.low(d, "report-link"));
    expect(st.isFile()).toBe(true);
    expect(await readFile(t.low(d, "report-link"), "utf8")).toBe("../docs/report.odt");
    await t.mount();
  });

  it("has the size of its target and the kind symlink in lstat", async () => {
    const d = await t.dir("lstat");
    await symlink("0123456789", t.p(d, "l"));
    await t.remount();
    const s = await pyLstat(t.p(d, "l"));
    expect(fileType(s.mode)).toBe("symlink");
    expect(s.size).toBe(10);
  });

  it("stays a symlink when renamed, and goes away when removed", async () => {
    const d = await t.dir("rename");
    await mkdir(t.p(d, "sub"));
    await symlink("target:x", t.p(d, "a"));
    await rename(t.p(d, "a"), t.p(d, "sub", "b?"));
    await t.remount();
    expect(await readlink(t.p(d, "sub", "b?"))).toBe("target:x");
    await unlink(t.p(d, "sub", "b?"));
    await t.remount();
    expect(await readdir(t.p(d, "sub"))).toEqual([]);
  });

  it("makes a symlink whose name needs encoding", async () => {
    const d = await t.dir("enc-name");
    const name = Buffer.from("link:CON. ");
    await sys("symlink", "t", bpath(t.p(d), name));
    await t.remount();
    expect((await pyReadlink(bpath(t.p(d), name))).toString()).toBe("t");
  });
  it("is read from the layer once, then from the kernel's cache (FUSE_CAP_CACHE_SYMLINKS)", async () => {
    await t.unmount();
    const layer = await t.mount({ env: { PERSHOME_FUSE_COUNTS: "1" } });
    const d = await t.dir("cached");
    await mkdir(t.p(d, "real"));
    await writeFile(t.p(d, "real", "f"), "x");
    await symlink("real", t.p(d, "via"));
    const readlinks = async (): Promise<number> => (await requestsSinceLast(layer)).readlink ?? 0;
    await readlinks();
    for (let i = 0; i < 20; i++) {
      expect(await readlink(t.p(d, "via"))).toBe("real");
      expect(await readFile(t.p(d, "via", "f"), "utf8")).toBe("x");
    }
    expect(await readlinks()).toBe(1);
  });
});
