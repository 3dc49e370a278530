// Nanosecond timestamps (FAT keeps 2 s, exFAT 10 ms): set, kept, and set one at a time.

import { chmod, mkdir, writeFile, appendFile, symlink } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { useLayer } from "../support/fixture.js";
import { lowerKinds } from "../support/lower.js";
import { sh, sleep } from "../support/run.js";
import { pyLstat, pyStat, utimeNs } from "../support/sys.js";

const NS = 1_000_000_000n;
const at = (iso: string, ns: number): bigint => BigInt(Date.parse(iso) / 1000) * NS + BigInt(ns);

describe.each(lowerKinds())("timestamps on a %s lower", (kind) => {
  const t = useLayer(kind, "times");

  it("keeps an mtime set with touch -d to the nanosecond across a remount", async () => {
    const d = await t.dir("touch-d");
    await writeFile(t.p(d, "f"), "x");
    const r = await sh(`TZ=UTC touch -d '2001-02-03 04:05:06.123456789' '${t.p(d, "f")}'`);
    expect(r.code, r.stderr).toBe(0);
    const want = at("2001-02-03T04:05:06Z", 123456789);
    expect((await pyStat(t.p(d, "f"))).mtimeNs).toBe(want);
    await t.remount();
    expect((await pyStat(t.p(d, "f"))).mtimeNs).toBe(want);
  });

  it("keeps atime and mtime set with utime(ns=…) across a remount, odd nanoseconds included", async () => {
    const d = await t.dir("utime");
    await writeFile(t.p(d, "f"), "x");
    const a = at("2019-07-08T09:10:11Z", 1);
    const m = at("2020-12-31T23:59:59Z", 999999999);
    await utimeNs(t.p(d, "f"), a, m);
    await t.remount();
    const s = await pyStat(t.p(d, "f"));
    expect([s.atimeNs, s.mtimeNs]).toEqual([a, m]);
  });

  it("keeps times FAT cannot represent: before 1980, after 2107, before 1970", async () => {
    const d = await t.dir("range");
    const cases: Record<string, bigint> = {
      y1975: at("1975-05-05T05:05:05Z", 500),
      y2150: at("2150-01-01T00:00:01Z", 42),
      y1969: at("1969-07-20T20:17:40Z", 0),
      epoch: 0n,
    };
    for (const [n, m] of Object.entries(cases)) {
      await writeFile(t.p(d, n), n);
      await utimeNs(t.p(d, n), m, m);
    }
    await t.remount();
    for (const [n, m] of Object.entries(cases)) expect((await pyStat(t.p(d, n))).mtimeNs, n).toBe(m);
  });

  it("touch -m sets only the mtime, touch -a only the atime", async () => {
    const d = await t.dir("touch-m");
    await writeFile(t.p(d, "f"), "x");
    const a0 = at("2010-01-01T00:00:00Z", 111);
    const m0 = at("2011-01-01T00:00:00Z", 222);
    await utimeNs(t.p(d, "f"), a0, m0);
    let r = await sh(`TZ=UTC touch -m -d '2015-06-07 08:09:10.5' '${t.p(d, "f")}'`);
    expect(r.code, r.stderr).toBe(0);
    let s = await pyStat(t.p(d, "f"));
    expect(s.mtimeNs).toBe(at("2015-06-07T08:09:10Z", 500_000_000));
    expect(s.atimeNs, "touch -m left atime alone").toBe(a0);
    r = await sh(`TZ=UTC touch -a -d '2016-01-01 00:00:00.25' '${t.p(d, "f")}'`);
    expect(r.code, r.stderr).toBe(0);
    await t.remount();
    s = await pyStat(t.p(d, "f"));
    expect(s.atimeNs).toBe(at("2016-01-01T00:00:00Z", 250_000_000));
    expect(s.mtimeNs, "touch -a left mtime alone").toBe(at("2015-06-07T08:09:10Z", 500_000_000));
  });

  it("moves mtime and ctime forward on a write, and ctime alone on a chmod", async () => {
    const d = await t.dir("update");
    await writeFile(t.p(d, "f"), "x");
    const old = at("2000-01-01T00:00:00Z", 0);
    await utimeNs(t.p(d, "f"), old, old);
    const s0 = await pyStat(t.p(d, "f"));
    const before = BigInt(Date.now() - 5000) * 1_000_000n;
    await chmod(t.p(d, "f"), 0o600);
    const s1 = await pyStat(t.p(d, "f"));
    expect(s1.mtimeNs, "chmod does not touch mtime").toBe(old);
    expect(s1.ctimeNs >= before, "chmod moves ctime to now").toBe(true);
    await sleep(20);
    await appendFile(t.p(d, "f"), "more");
    const s2 = await pyStat(t.p(d, "f"));
    expect(s2.mtimeNs >= before, "a write moves mtime to now").toBe(true);
    expect(s2.ctimeNs >= s0.ctimeNs).toBe(true);
  });

  it("keeps a directory's mtime across a remount", async () => {
    const d = await t.dir("dirtime");
    await mkdir(t.p(d, "sub"));
    const m = at("2005-05-05T05:05:05Z", 123);
    await utimeNs(t.p(d, "sub"), m, m);
    await t.remount();
    expect((await pyStat(t.p(d, "sub"))).mtimeNs).toBe(m);
  });

  it("sets a symlink's own times without following it (utimensat AT_SYMLINK_NOFOLLOW)", async () => {
    const d = await t.dir("symtime");
    await writeFile(t.p(d, "target"), "x");
    await symlink("target", t.p(d, "l"));
    const tt = at("2012-02-02T02:02:02Z", 7);
    await utimeNs(t.p(d, "target"), tt, tt);
    const lm = at("2013-03-03T03:03:03Z", 9);
    await utimeNs(t.p(d, "l"), lm, lm, false);
    await t.remount();
    expect((await pyLstat(t.p(d, "l"))).mtimeNs).toBe(lm);
    expect((await pyStat(t.p(d, "l"))).mtimeNs).toBe(tt);
  });
});
