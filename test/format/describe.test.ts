import { describe as group, expect, it } from "vitest";
import { describe, olderRecordMatches, recordApplies, sameStoredTime } from "../../src/format/describe.js";
import type { StoredFacts } from "../../src/format/describe.js";
import type { MetaRecord } from "../../src/format/records.js";

const file = (size: number, mtimeMs: number): StoredFacts => ({
  isDir: false,
  isFile: true,
  size,
  mtimeMs,
  mtime: [Math.floor(mtimeMs / 1000), (mtimeMs % 1000) * 1e6],
});
const T = 1_700_000_000_000;
const rec = (extra: Partial<MetaRecord> = {}): MetaRecord => ({
  name: "f",
  kind: "f",
  mode: 0o600,
  fp: [10, T],
  ...extra,
});

group("whether a record still applies", () => {
  it("applies to the file it fingerprinted, with FAT's 2 s steps", () => {
    expect(recordApplies(rec(), file(10, T))).toBe(true);
    expect(recordApplies(rec(), file(10, T - 1990))).toBe(true);
  });

  it("applies when the stick is read under another time zone", () => {
    expect(recordApplies(rec(), file(10, T + 3 * 3600_000))).toBe(true);
    expect(recordApplies(rec(), file(10, T - 5.5 * 3600_000 + 1000))).toBe(true);
  });

  it("does not apply to a file edited or replaced elsewhere", () => {
    expect(recordApplies(rec(), file(11, T))).toBe(false);
    expect(recordApplies(rec(), file(10, T + 61_000))).toBe(false);
    expect(recordApplies(rec(), { ...file(10, T), isFile: false, isDir: true })).toBe(false);
    expect(recordApplies(rec({ fp: undefined }), file(10, T))).toBe(false);
  });

  it("trusts a record written while the layer was writing the file", () => {
    expect(recordApplies(rec({ writing: true }), file(99, T + 99_000))).toBe(true);
  });

  // A symlink's stored copy of its target is not fsync'd (docs/format.md, rule 3): readlink
  // takes the target from the record, so a copy a pull left empty or zeroed is still the link.
  it("keeps a symlink whose stored copy a pull left empty, with the time it was made", () => {
    const link = rec({ kind: "l", mode: 0o777, target: "../target/file", fp: [14, T] });
    for (const applies of [recordApplies, olderRecordMatches]) {
      expect(applies(link, file(0, T))).toBe(true);
      expect(applies(link, file(0, T - 1500))).toBe(true);
      // the same size in zeros or garbage: the fingerprint matches as for any file
      expect(applies(link, file(14, T))).toBe(true);
      // an empty file made later (on Windows, say) is a user's empty file, never hidden
      expect(applies(link, file(0, T + 61_000))).toBe(false);
      // a cut-off copy is no state FAT leaves (size and data come together): not the link
      expect(applies(link, file(5, T))).toBe(false);
    }
    const d = describe(file(14, T), link);
    expect(d.mode).toBe(0o120777);
    expect(d.size).toBe(14);
    expect(describe(file(0, T), link).size).toBe(14);
  });

  it("keeps the empty-copy rule to symlinks", () => {
    expect(recordApplies(rec({ fp: [10, T] }), file(0, T))).toBe(false);
    expect(recordApplies(rec({ kind: "p", fp: [10, T] }), file(0, T))).toBe(false);
    expect(recordApplies(rec({ kind: "h", linkId: "0123456789abcdef", fp: [90, T] }), file(0, T))).toBe(
      false,
    );
    expect(olderRecordMatches(rec({ fp: [10, T] }), file(0, T))).toBe(false);
  });

  it("compares times as documented", () => {
    expect(sameStoredTime(T, T + 2000)).toBe(true);
    expect(sameStoredTime(T, T + 2001)).toBe(false);
    expect(sameStoredTime(T, T + 30 * 3600_000)).toBe(false);
  });
});

group("how an entry looks", () => {
  it("uses safe defaults without a record", () => {
    expect(describe(file(5, T), undefined).mode).toBe(0o100644);
    expect(describe({ ...file(0, T), isFile: false, isDir: true }, undefined).mode).toBe(0o040755);
  });

  it("shows a symlink with its target's length", () => {
    const d = describe(file(3, T), rec({ kind: "l", target: "abc", mode: 0o777 }));
    expect(d.mode).toBe(0o120777);
    expect(d.size).toBe(3);
  });
});
