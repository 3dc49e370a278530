// Permission bits are kept (FAT has none) and enforced; everything is owned by the mounting user
// (or --owner). The ssh-key case: chmod 600 must survive a remount.

import { chmod, mkdir, stat, writeFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { useLayer } from "../support/fixture.js";
import { lowerKinds } from "../support/lower.js";
import { NOBODY, run, sh } from "../support/run.js";
import { errnoOfAs, perms, pyStat } from "../support/sys.js";

const mode = async (p: string): Promise<string> => perms((await stat(p)).mode);

describe.each(lowerKinds())("modes on a %s lower", (kind) => {
  const t = useLayer(kind, "modes", { mount: { allowOther: true } });

  it("creates files 0644 and directories 0755 under umask 022, 0600/0700 under umask 077", async () => {
    const d = await t.dir("umask");
    const r = await sh(
      `cd '${t.p(d)}' && umask 022 && touch f && mkdir d && umask 077 && touch g && mkdir e`,
    );
    expect(r.code, r.stderr).toBe(0);
    expect([
      await mode(t.p(d, "f")),
      await mode(t.p(d, "d")),
      await mode(t.p(d, "g")),
      await mode(t.p(d, "e")),
    ]).toEqual(["0644", "0755", "0600", "0700"]);
    await t.remount();
    expect([
      await mode(t.p(d, "f")),
      await mode(t.p(d, "d")),
      await mode(t.p(d, "g")),
      await mode(t.p(d, "e")),
    ]).toEqual(["0644", "0755", "0600", "0700"]);
  });

  it("keeps chmod 600 on a private key and 700 on ~/.ssh across a remount", async () => {
    const d = await t.dir("ssh");
    await mkdir(t.p(d, ".ssh"));
    await chmod(t.p(d, ".ssh"), 0o700);
    await writeFile(t.p(d, ".ssh", "id_ed25519"), "-----BEGIN OPENSSH PRIVATE KEY-----\n");
    await chmod(t.p(d, ".ssh", "id_ed25519"), 0o600);
    await t.remount();
    expect(await mode(t.p(d, ".ssh"))).toBe("0700");
    expect(await mode(t.p(d, ".ssh", "id_ed25519"))).toBe("0600");
  });

  it("keeps each permission pattern on files and directories across a remount", async () => {
    const d = await t.dir("patterns");
    const files: Record<string, number> = { f000: 0o000, f400: 0o400, f640: 0o640, f705: 0o705, f777: 0o777 };
    const dirs: Record<string, number> = { d500: 0o500, d711: 0o711, dsticky: 0o1777, dsetgid: 0o2775 };
    for (const [n, m] of Object.entries(files)) {
      await writeFile(t.p(d, n), n);
      await chmod(t.p(d, n), m);
    }
    for (const [n, m] of Object.entries(dirs)) {
      await mkdir(t.p(d, n));
      await chmod(t.p(d, n), m);
    }
    const want = Object.fromEntries(
      [...Object.entries(files), ...Object.entries(dirs)].map(([n, m]) => [n, perms(m)]),
    );
    const got = async (): Promise<Record<string, string>> =>
      Object.fromEntries(
        await Promise.all(Object.keys(want).map(async (n) => [n, await mode(t.p(d, n))] as const)),
      );
    expect(await got()).toEqual(want);
    await t.remount();
    expect(await got()).toEqual(want);
  });

  it("changes a mode again after a remount (the newest record wins)", async () => {
    const d = await t.dir("rechmod");
    await writeFile(t.p(d, "f"), "x");
    await chmod(t.p(d, "f"), 0o600);
    await t.remount();
    await chmod(t.p(d, "f"), 0o751);
    await t.remount();
    expect(await mode(t.p(d, "f"))).toBe("0751");
    await chmod(t.p(d, "f"), 0o644);
    await t.remount();
    expect(await mode(t.p(d, "f"))).toBe("0644");
  });

  it("runs a script made executable with chmod +x, also after a remount", async () => {
    const d = await t.dir("exec");
    await writeFile(t.p(d, "hello.sh"), "#!/bin/sh\necho hello from the stick\n");
    await chmod(t.p(d, "hello.sh"), 0o755);
    expect((await run(t.p(d, "hello.sh"))).stdout).toBe("hello from the stick\n");
    await t.remount();
    const r = await run(t.p(d, "hello.sh"));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("hello from the stick\n");
  });

  it("shows every file as owned by the mounting user (root)", async () => {
    const d = await t.dir("owner");
    await writeFile(t.p(d, "f"), "x");
    const s = await pyStat(t.p(d, "f"));
    expect([s.uid, s.gid]).toEqual([0, 0]);
    const root = await pyStat(t.mnt);
    expect([root.uid, root.gid]).toEqual([0, 0]);
  });

  it("enforces the bits against another user: no read of 0600, no write to 0644, no chmod", async () => {
    const d = await t.dir("others");
    await chmod(t.p(d), 0o755);
    await writeFile(t.p(d, "private"), "p");
    await chmod(t.p(d, "private"), 0o600);
    await writeFile(t.p(d, "public"), "q");
    await chmod(t.p(d, "public"), 0o644);
    expect(await errnoOfAs(NOBODY, "read", t.p(d, "private"))).toBe("EACCES");
    expect(await errnoOfAs(NOBODY, "read", t.p(d, "public"))).toBe("OK");
    expect(await errnoOfAs(NOBODY, "write", t.p(d, "public"), "overwrite")).toBe("EACCES");
    expect(await errnoOfAs(NOBODY, "write", t.p(d, "new-file"), "x")).toBe("EACCES");
    expect(await errnoOfAs(NOBODY, "chmod", t.p(d, "public"), 0o666)).toBe("EPERM");
    expect(await mode(t.p(d, "public"))).toBe("0644");
  });
});

describe.each(lowerKinds())("--owner on a %s lower", (kind) => {
  const t = useLayer(kind, "owner", { mount: { owner: NOBODY, allowOther: true } });

  it("shows files as owned by the --owner user, who can then use them like a home", async () => {
    const d = await t.dir("home");
    await chmod(t.p(d), 0o700);
    const st = await pyStat(t.p(d));
    expect([st.uid, st.gid]).toEqual([NOBODY.uid, NOBODY.gid]);
    expect(await errnoOfAs(NOBODY, "write", t.p(d, "made-by-owner"), "mine")).toBe("OK");
    const f = await pyStat(t.p(d, "made-by-owner"));
    expect([f.uid, f.gid]).toEqual([NOBODY.uid, NOBODY.gid]);
    expect(await errnoOfAs(NOBODY, "chmod", t.p(d, "made-by-owner"), 0o600)).toBe("OK");
    await t.remount();
    expect(perms((await pyStat(t.p(d, "made-by-owner"))).mode)).toBe("0600");
    expect(await errnoOfAs(NOBODY, "read", t.p(d, "made-by-owner"))).toBe("OK");
  });

  it("still enforces the owner's own bits: a 0000 file is unreadable, a 0500 directory unwritable", async () => {
    const d = await t.dir("self");
    await writeFile(t.p(d, "locked"), "x");
    await chmod(t.p(d, "locked"), 0o000);
    await mkdir(t.p(d, "ro"));
    await chmod(t.p(d, "ro"), 0o500);
    expect(await errnoOfAs(NOBODY, "read", t.p(d, "locked"))).toBe("EACCES");
    expect(await errnoOfAs(NOBODY, "write", t.p(d, "ro", "x"), "x")).toBe("EACCES");
    // …and the owner may give access back.
    expect(await errnoOfAs(NOBODY, "chmod", t.p(d, "locked"), 0o400)).toBe("OK");
    expect(await errnoOfAs(NOBODY, "read", t.p(d, "locked"))).toBe("OK");
  });
});
