import { crc32 } from "node:zlib";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseLog, recordLine, snapshotText, tombstoneLine } from "../../src/format/records.js";
import type { MetaRecord } from "../../src/format/records.js";

const rec = (name: string, extra: Partial<MetaRecord> = {}): MetaRecord => ({
  name,
  kind: "f",
  mode: 0o600,
  mtime: [1700000000, 123456789],
  fp: [10, 1700000000000],
  ...extra,
});
const log = (...parts: string[]): Buffer => Buffer.from(parts.join(""), "utf8");

describe("metadata log", () => {
  it("reads back a snapshot and appended records, last one winning", () => {
    const text = log(
      snapshotText(4, [rec("a"), rec("b", { kind: "l", target: "../x", mode: 0o777 })]),
      recordLine(rec("a", { mode: 0o644 })),
      tombstoneLine("b"),
    );
    const parsed = parseLog(text);
    expect(parsed.complete).toBe(true);
    expect(parsed.gen).toBe(4);
    expect(parsed.badLines).toBe(0);
    expect(parsed.records.get("a")?.mode).toBe(0o644);
    expect(parsed.records.has("b")).toBe(false);
  });

  it("keeps names, xattrs and targets that are not UTF-8", () => {
    const name = Buffer.from([0x66, 0xff]).toString("latin1");
    const x = new Map([["user.k", Buffer.from([0, 1, 255])]]);
    const parsed = parseLog(
      log(
        snapshotText(1, [
          rec(name, { xattrs: x, kind: "l", target: Buffer.from([0xfe]).toString("latin1") }),
        ]),
      ),
    );
    const r = parsed.records.get(name);
    expect(r?.xattrs?.get("user.k")).toEqual(Buffer.from([0, 1, 255]));
    expect(r?.target).toBe(Buffer.from([0xfe]).toString("latin1"));
  });

  it("ignores a torn last line", () => {
    const full = snapshotText(1, [rec("a")]) + recordLine(rec("a", { mode: 0o700 }));
    const torn = log(full.slice(0, full.length - 7));
    const parsed = parseLog(torn);
    expect(parsed.complete).toBe(true);
    expect(parsed.records.get("a")?.mode).toBe(0o600);
    expect(parsed.badLines).toBe(1);
  });

  it("treats a snapshot without its end line as incomplete", () => {
    const text = snapshotText(1, [rec("a")]);
    expect(parseLog(log(text.slice(0, text.lastIndexOf("\n", text.length - 2) + 1))).complete).toBe(false);
    expect(parseLog(Buffer.alloc(0)).complete).toBe(false);
  });

  it("rejects records that would point outside the directory or describe devices", () => {
    const bad = [
      '{"n":"../etc","k":"f"}',
      '{"n":"a/b","k":"f"}',
      '{"n":"..","k":"d"}',
      '{"n":"dev","k":"c"}',
      '{"n":"h","k":"h","h":"../../etc/passwd"}',
      '{"n":"m","k":"f","m":99999}',
      '{"n":"x","k":"f","x":{"c2VjdXJpdHkueA==":"AA=="}}',
    ];
    const lines = bad.map((j) => crc32(j).toString(16).padStart(8, "0") + " " + j + "\n");
    const text = log(snapshotText(1, []), ...lines);
    const parsed = parseLog(text);
    expect(parsed.records.size).toBe(0);
    expect(parsed.badLines).toBe(bad.length);
  });

  it("never throws on garbage and only returns records that parse (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4000 }), fc.nat(200), (junk, cut) => {
        const good = snapshotText(2, [rec("a"), rec("b")]);
        const mixed = Buffer.concat([
          Buffer.from(good.slice(0, Math.min(cut, good.length))),
          Buffer.from(junk),
        ]);
        const parsed = parseLog(mixed);
        for (const r of parsed.records.values()) expect(["a", "b"]).toContain(r.name);
        parseLog(Buffer.from(junk));
      }),
      { numRuns: 2000 },
    );
  });
});
