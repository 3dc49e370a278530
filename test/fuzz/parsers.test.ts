// Fuzzing the on-stick format's pure parsers (src/format) with fast-check: malformed metadata
// logs, names, marker files and `.pershome/state`. None may throw or take long, and nothing
// they accept may carry what the format forbids (a name out of the folder, a device, a link id
// that is a path, mode bits beyond 07777). docs/robustness.md, section 3, has the figures;
// PERSHOME_FUZZ_RUNS=N runs every property N times.
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { checkMarker } from "../../src/format/marker.js";
import { decodeName, encodeName } from "../../src/format/names.js";
import { isSafeName, parseLog, recordLine, snapshotText, type MetaRecord } from "../../src/format/records.js";
import { parseStateLog } from "../../src/format/state.js";
import { describe as describeEntry, recordApplies, S_IFMT } from "../../src/format/describe.js";
import { crcLine, logBytes, markerBytes, recordObject, runs, stateBytes, storedName } from "./gen.js";

/** Slowest single call seen per parser (ms), for the report. */
const slowest = new Map<string, number>();
let executions = 0;
function timed<T>(what: string, f: () => T): T {
  const t0 = performance.now();
  const v = f();
  const ms = performance.now() - t0;
  executions++;
  slowest.set(what, Math.max(slowest.get(what) ?? 0, ms));
  expect(ms, `${what} took`).toBeLessThan(2000);
  return v;
}

const KNOWN_TYPES = new Set([0o100000, 0o040000, 0o120000, 0o010000, 0o140000]);
const LINK_ID = /^[0-9a-f]{16,32}$/;

function checkParsed(p: ReturnType<typeof parseLog>): void {
  for (const [name, r] of [
    ...p.records,
    ...[...p.older].flatMap(([n, l]) => l.map((r) => [n, r] as const)),
  ]) {
    expect(r.name).toBe(name);
    expect(isSafeName(name), JSON.stringify(name)).toBe(true);
    expect(["f", "d", "l", "p", "s", "h"]).toContain(r.kind);
    if (r.mode !== undefined) expect(r.mode & ~0o7777).toBe(0);
    if (r.linkId !== undefined) expect(r.linkId).toMatch(LINK_ID);
    if (r.kind === "h") expect(r.linkId).toBeDefined();
    if (r.kind === "l") expect(r.target).toBeDefined();
    if (r.nlink !== undefined) expect(r.nlink).toBeGreaterThanOrEqual(0);
    // whatever a record says, the entry it describes is a file, folder, symlink, fifo or socket
    for (const isDir of [false, true]) {
      const facts = { isDir, isFile: !isDir, size: 10, mtimeMs: 1e12, mtime: [1e9, 0] as const };
      const d = describeEntry(facts, recordApplies(r, facts) ? r : undefined);
      expect(KNOWN_TYPES.has(d.mode & S_IFMT), d.mode.toString(8)).toBe(true);
      expect(d.size).toBeGreaterThanOrEqual(0);
    }
  }
  expect(p.badLines).toBeGreaterThanOrEqual(0);
}

describe("fuzzing the format's parsers", () => {
  afterAll(() => {
    console.log(
      `parser fuzz: ${executions} executions, 0 crashes, 0 hangs; slowest call per parser (ms): ${JSON.stringify(Object.fromEntries([...slowest].map(([k, v]) => [k, Math.round(v * 10) / 10])))}`,
    );
  });

  it("parseLog: arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 5000 }), (u) =>
        checkParsed(timed("parseLog", () => parseLog(Buffer.from(u)))),
      ),
      { numRuns: runs(500) },
    );
  });

  it("parseLog: generated logs (valid CRCs, forged and nonsense records, torn, duplicated, garbage)", () => {
    fc.assert(
      fc.property(
        fc.array(storedName, { maxLength: 5 }).chain((names) => logBytes(names)),
        (b) => checkParsed(timed("parseLog", () => parseLog(b))),
      ),
      { numRuns: runs(1000) },
    );
  });

  it("parseLog: a record the layer wrote is read back as written, after any damage to the other lines", () => {
    const rec: MetaRecord = {
      name: "k\xe9y",
      kind: "f",
      mode: 0o600,
      mtime: [1700000000, 5],
      fp: [3, 1700000000000],
    };
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 60 }), { maxLength: 4 }), (junk) => {
        // junk lines after the snapshot (each ends in a newline): the record stays
        const text = Buffer.concat([
          Buffer.from(snapshotText(3, [rec]), "latin1"),
          ...junk.map((j) => Buffer.concat([Buffer.from(j.filter((x) => x !== 10)), Buffer.from("\n")])),
        ]);
        const p = timed("parseLog", () => parseLog(text));
        expect(p.complete).toBe(true);
        expect(p.records.get(rec.name)?.mode).toBe(0o600);
      }),
      { numRuns: runs(300) },
    );
  });

  it("parseLog: a huge log of valid lines is parsed in bounded time", () => {
    const many = snapshotText(
      1,
      Array.from({ length: 20000 }, (_, i) => ({
        name: `f${i}`,
        kind: "f" as const,
        mode: 0o600,
        fp: [i, 1e12] as const,
      })),
    );
    const p = timed("parseLog (20,000 records)", () => parseLog(Buffer.from(many, "latin1")));
    expect(p.records.size).toBe(20000);
    const one = recordLine({ name: "x", kind: "f", mode: 0o644 });
    expect(one.endsWith("\n")).toBe(true);
  });

  it("names: decodeName never throws and encode/decode round-trips every Linux name", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 60 }), (s) => {
        timed("decodeName", () => decodeName(s));
      }),
      { numRuns: runs(1000) },
    );
    fc.assert(
      fc.property(storedName, (b) => {
        const user = b.toString("latin1");
        const stored = timed("encodeName", () => encodeName(user));
        expect(decodeName(stored)).toBe(user);
        expect(stored).not.toMatch(/^\.pershome/);
        expect([...stored].some((c) => c.charCodeAt(0) < 0x20 || '"*:<>?\\|/'.includes(c))).toBe(false);
      }),
      { numRuns: runs(1000) },
    );
  });

  it("checkMarker: any bytes or JSON give ok (version 1), newer or garbage, never a throw", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          markerBytes,
          fc.jsonValue().map((j) => Buffer.from(JSON.stringify(j) ?? "null")),
        ),
        (m) => {
          if (typeof m === "string") return;
          const r = timed("checkMarker", () => checkMarker(m));
          if (r.ok) expect(r.marker.version).toBe(1);
          else if (r.reason === "newer") expect(r.version).toBeGreaterThan(1);
        },
      ),
      { numRuns: runs(1000) },
    );
  });

  it("parseStateLog: any text gives only well-formed events", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          stateBytes,
          fc.string({ unit: "binary" }).map((s) => Buffer.from(s)),
        ),
        (b) => {
          if (typeof b === "string") return;
          for (const e of timed("parseStateLog", () => parseStateLog(b.toString("utf8")))) {
            expect(["mount", "umount"]).toContain(e.ev);
            expect(typeof e.t).toBe("string");
          }
        },
      ),
      { numRuns: runs(1000) },
    );
  });

  it("records: every generated record object, appended with a valid CRC, parses to a safe record or is dropped", () => {
    const base = snapshotText(1, []);
    fc.assert(
      fc.property(fc.array(recordObject([Buffer.from("a")]), { minLength: 1, maxLength: 4 }), (objs) => {
        const text = base + objs.map((o) => crcLine(JSON.stringify(o))).join("");
        checkParsed(timed("parseLog", () => parseLog(Buffer.from(text, "utf8"))));
      }),
      { numRuns: runs(1000) },
    );
  });
});
