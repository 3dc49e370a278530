// fast-check generators for hostile sticks: names (encoded, raw bytes, reserved-looking, case
// twins), metadata records (well-formed, forged, nonsense, claims of setuid, devices, other
// owners, paths out of the folder), whole metadata logs (valid CRCs or not, torn, garbage),
// marker files, `.pershome/state`, and directory layouts that put them together.
import fc from "fast-check";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { crc32 } from "node:zlib";

export const RUNS = Number(process.env.PERSHOME_FUZZ_RUNS ?? 0);
/** Runs for one property: the CI default, or PERSHOME_FUZZ_RUNS for a long run. */
export const runs = (ci: number): number => (RUNS > 0 ? RUNS : ci);
/** Replays one failure: PERSHOME_FUZZ_SEED and PERSHOME_FUZZ_PATH as fast-check printed them. */
export const replay: { seed?: number; path?: string } = process.env.PERSHOME_FUZZ_SEED
  ? {
      seed: Number(process.env.PERSHOME_FUZZ_SEED),
      ...(process.env.PERSHOME_FUZZ_PATH ? { path: process.env.PERSHOME_FUZZ_PATH } : {}),
    }
  : {};

export const crcLine = (json: string): string =>
  crc32(json).toString(16).padStart(8, "0") + " " + json + "\n";

const hex = fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: 16, maxLength: 32 });
const pua = (c: string): string => String.fromCharCode(0xf000 + c.charCodeAt(0));

/** A stored name as bytes: never empty, no '/', no NUL, not '.' or '..', at most 255 bytes. */
export const storedName: fc.Arbitrary<Buffer> = fc
  .oneof(
    fc.constantFrom("a", "b", "Makefile", "makefile", "MAKEFILE", "report.odt", "nul.txt", "CON", "x~1"),
    fc.stringMatching(/^[A-Za-z0-9 ._-]{1,20}$/).map((s) => s),
    fc
      .array(
        fc.constantFrom(
          ...'."*:<>?\\|/ ',
          "é",
          "ß",
          "İ",
          "\uf0fe",
          "\uf0ff",
          "\uf02e",
          "\uf02f",
          "\uf000",
          "\uf27f",
          "a",
        ),
        {
          minLength: 1,
          maxLength: 12,
        },
      )
      .map((a) => a.join("")),
    fc.constantFrom(
      pua("."),
      pua(".") + pua("."),
      `a${pua("/")}b`,
      "\uf0fe",
      "x\uf0ff",
      ".pershome",
      ".pershomeX",
      ".pershome.meta.c",
    ),
    fc.string({ unit: "binary", minLength: 1, maxLength: 30 }),
  )
  .map((s) => Buffer.from(s, "utf8") as Buffer)
  .chain((b) =>
    fc.oneof(
      { weight: 4, arbitrary: fc.constant(b) },
      // raw bytes that are not UTF-8
      { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 24 }).map((u) => Buffer.from(u)) },
    ),
  )
  .map((b) => Buffer.from(b.filter((x) => x !== 0x2f && x !== 0).subarray(0, 255)))
  .filter((b) => b.length > 0 && b.toString("latin1") !== "." && b.toString("latin1") !== "..");

const anyJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.string(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
);

/** A record's JSON object, about `names` (a name from the folder, mostly). */
export function recordObject(names: Buffer[]): fc.Arbitrary<Record<string, unknown>> {
  const nameOf = fc.oneof(
    { weight: 5, arbitrary: names.length ? fc.constantFrom(...names) : storedName },
    { weight: 1, arbitrary: storedName },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom("..", ".", "", "../x", "a/b", "../../../outside/secret")
        .map((s) => Buffer.from(s)),
    },
  );
  return fc
    .record(
      {
        name: nameOf,
        asBase64: fc.boolean(),
        k: fc.oneof(
          fc.constantFrom("f", "d", "l", "p", "s", "h"),
          fc.constantFrom("c", "b", "x", "", "F"),
          anyJson,
        ),
        m: fc.oneof(
          fc.constantFrom(0o644, 0o600, 0o4755, 0o6755, 0o7777, 0o1777, 0o20666),
          fc.integer(),
          anyJson,
        ),
        t: fc.oneof(fc.tuple(fc.integer(), fc.integer()), anyJson),
        l: fc.oneof(
          fc.constantFrom("../../../outside/secret", "/etc/shadow", "loop", "self", ".."),
          fc.string(),
        ),
        h: fc.oneof(hex, fc.constantFrom("../../etc", "00"), fc.string()),
        nl: fc.oneof(fc.integer({ min: -5, max: 5 }), anyJson),
        fp: fc.oneof(fc.tuple(fc.nat(5000), fc.nat()), anyJson),
        w: fc.oneof(fc.constant(1), anyJson),
        del: fc.oneof(fc.constant(1), anyJson),
        owner: fc.constantFrom({ u: 0 }, { uid: 0, gid: 0 }, { o: "root" }, { rdev: 259 }, {}),
        x: fc.oneof(fc.constant({ [Buffer.from("user.k").toString("base64")]: "dmFs" }), anyJson),
      },
      { requiredKeys: ["name", "asBase64", "k", "owner"] },
    )
    .map((r) => {
      const o: Record<string, unknown> = {};
      if (r.asBase64) o.nb = r.name.toString("base64");
      else o.n = r.name.toString("utf8");
      for (const k of ["k", "m", "t", "l", "h", "nl", "fp", "w", "del", "x"] as const)
        if (r[k] !== undefined) o[k] = r[k];
      Object.assign(o, r.owner);
      return o;
    });
}

/** A metadata log: header, snapshot, end line, appended records, with damage of every kind. */
export function logBytes(names: Buffer[]): fc.Arbitrary<Buffer> {
  return fc
    .record({
      gen: fc.oneof(fc.nat(10), anyJson),
      snapshot: fc.array(recordObject(names), { maxLength: 8 }),
      appended: fc.array(recordObject(names), { maxLength: 6 }),
      endCount: fc.oneof(fc.constant(-1), fc.nat(10)),
      header: fc.constantFrom("good", "missing", "v2", "twice"),
      damage: fc.array(
        fc.record({
          at: fc.nat(),
          what: fc.constantFrom("flip", "cut", "garbage", "dup", "nocrc", "crlf"),
          bytes: fc.uint8Array({ maxLength: 40 }),
        }),
        { maxLength: 3 },
      ),
    })
    .map((g) => {
      const lines: string[] = [];
      if (g.header !== "missing")
        lines.push(crcLine(JSON.stringify({ pershome: "meta", v: g.header === "v2" ? 2 : 1, gen: g.gen })));
      if (g.header === "twice") lines.push(lines[0]!);
      for (const r of g.snapshot) lines.push(crcLine(JSON.stringify(r)));
      lines.push(crcLine(JSON.stringify({ end: g.endCount < 0 ? g.snapshot.length : g.endCount })));
      for (const r of g.appended) lines.push(crcLine(JSON.stringify(r)));
      let buf = Buffer.from(lines.join(""), "utf8");
      for (const d of g.damage) {
        const at = buf.length ? d.at % buf.length : 0;
        if (d.what === "flip" && buf.length) buf[at] = buf[at]! ^ (1 << (d.at % 8));
        else if (d.what === "cut") buf = buf.subarray(0, at);
        else if (d.what === "garbage")
          buf = Buffer.concat([buf.subarray(0, at), Buffer.from(d.bytes), buf.subarray(at)]);
        else if (d.what === "dup") buf = Buffer.concat([buf, buf.subarray(at)]);
        else if (d.what === "nocrc")
          buf = Buffer.concat([
            buf,
            Buffer.from(`00000000 ${JSON.stringify({ n: "a", k: "f", m: 0o4777 })}\n`),
          ]);
        else buf = Buffer.from(buf.toString("latin1").replace(/\n/g, "\r\n"), "latin1");
      }
      return buf;
    });
}

export const markerBytes: fc.Arbitrary<Buffer | "dir" | "fifo" | "symlink" | "none"> = fc.oneof(
  fc.constantFrom("none" as const, "dir" as const, "fifo" as const, "symlink" as const),
  fc.constant(Buffer.from('{"format":"pershome","version":1,"created":"2024-01-01T00:00:00Z"}\n')),
  fc
    .record({
      format: fc.oneof(fc.constant("pershome"), fc.string()),
      version: fc.oneof(fc.constantFrom(0, 1, 1.5, -1), anyJson),
      created: anyJson,
    })
    .map((o) => Buffer.from(JSON.stringify(o))),
  fc.uint8Array({ maxLength: 200 }).map((u) => Buffer.from(u)),
);

export const stateBytes: fc.Arbitrary<Buffer | "none"> = fc.oneof(
  fc.constant("none" as const),
  fc
    .array(
      fc.oneof(
        fc
          .record({
            ev: fc.constantFrom("mount", "umount", "x"),
            t: fc.oneof(fc.string(), anyJson),
            host: anyJson,
          })
          .map((o) => crcLine(JSON.stringify(o))),
        fc.string().map((s) => s + "\n"),
      ),
      { maxLength: 6 },
    )
    .map((l) => Buffer.from(l.join(""))),
  fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
);

export type EntryKind = "file" | "dir" | "symlink" | "fifo" | "chardev";

export interface StickDir {
  entries: { name: Buffer; kind: EntryKind; size: number; target: string; children: StickDir | undefined }[];
  logA: Buffer | undefined;
  logB: Buffer | undefined;
}

export interface StickSpec {
  home: StickDir;
  marker: Buffer | "dir" | "fifo" | "symlink" | "none";
  state: Buffer | "none";
  /** files in .pershome/links (hard-link data), names as given */
  links: { name: string; size: number }[];
  linksLog: Buffer | undefined;
}

/** A directory of a generated stick; `depth` levels of folders below. `posix`: symlinks, fifos, devices. */
export function stickDir(depth: number, posix: boolean): fc.Arbitrary<StickDir> {
  const kinds: EntryKind[] = posix
    ? ["file", "file", "file", "dir", "symlink", "fifo", "chardev"]
    : ["file", "file", "file", "dir"];
  return fc
    .uniqueArray(storedName, { maxLength: 10, selector: (b) => b.toString("latin1").toLowerCase() })
    .chain((names) =>
      fc.record({
        entries: fc.tuple(
          ...names.map((name) =>
            fc.record({
              name: fc.constant(name),
              kind: fc.constantFrom(...(depth > 0 ? kinds : kinds.filter((k) => k !== "dir"))),
              size: fc.oneof(fc.constant(0), fc.nat(3000)),
              target: fc.constantFrom("../../../outside/secret", "loop", "/etc/passwd", "x"),
              children: depth > 0 ? stickDir(depth - 1, posix) : fc.constant(undefined),
            }),
          ),
        ),
        logA: fc.option(logBytes(names), { nil: undefined, freq: 3 }),
        logB: fc.option(logBytes(names), { nil: undefined, freq: 2 }),
      }),
    );
}

export function stick(posix: boolean): fc.Arbitrary<StickSpec> {
  return fc.record({
    home: stickDir(2, posix),
    marker: markerBytes,
    state: stateBytes,
    links: fc.array(fc.record({ name: fc.oneof(hex, fc.constant("junk")), size: fc.nat(100) }), {
      maxLength: 3,
    }),
    linksLog: fc.option(logBytes([]), { nil: undefined }),
  });
}

const bp = (dir: Buffer, name: Buffer | string): Buffer =>
  Buffer.concat([dir, Buffer.from("/"), typeof name === "string" ? Buffer.from(name) : name]);

function writeDir(dir: Buffer, d: StickDir, contents: Map<string, Buffer>, serial: { n: number }): void {
  for (const e of d.entries) {
    const p = bp(dir, e.name);
    // a name taken already (the layer's own area, a log) keeps what is there
    if (fs.existsSync(p) || fs.lstatSync(p, { throwIfNoEntry: false })) continue;
    if (e.kind === "dir") {
      fs.mkdirSync(p);
      writeDir(p, e.children ?? { entries: [], logA: undefined, logB: undefined }, contents, serial);
    } else if (e.kind === "file") {
      const body = Buffer.alloc(e.size, `file ${serial.n++} `);
      fs.writeFileSync(p, body);
      contents.set(p.toString("latin1"), body);
    } else if (e.kind === "symlink") fs.symlinkSync(e.target, p);
    else if (e.kind === "fifo") mknod(p, 0o10666);
    // a device node planted on the stick (only a plain directory can hold one): /dev/zero's
    // numbers, a device that would hand out data if the layer honoured it
    else mknod(p, 0o20666);
  }
  // the name of a log may also be taken by a generated entry: then the entry stays
  for (const [slot, log] of [
    [".pershome.meta.a", d.logA],
    [".pershome.meta.b", d.logB],
  ] as const)
    if (log && !fs.existsSync(bp(dir, slot))) fs.writeFileSync(bp(dir, slot), log);
}

function mknod(p: Buffer, mode: number): void {
  const r = spawnSync("python3", [
    "-c",
    "import os,sys; os.mknod(bytes.fromhex(sys.argv[1]), int(sys.argv[2]), os.makedev(1, 5))",
    p.toString("hex"),
    String(mode),
  ]);
  if (r.status !== 0) throw new Error(`mknod: ${String(r.stderr)}`);
}

/**
 * Writes a generated stick under `home` (the stick's pershome folder, created empty by the
 * caller). Returns the regular files written (path as byte string -> content).
 */
export function writeStick(home: string, s: StickSpec): Map<string, Buffer> {
  const contents = new Map<string, Buffer>();
  const area = path.join(home, ".pershome");
  if (s.marker !== "none" || s.state !== "none" || s.links.length) fs.mkdirSync(area, { recursive: true });
  if (s.marker === "dir") fs.mkdirSync(path.join(area, "format"));
  else if (s.marker === "fifo") mknod(Buffer.from(path.join(area, "format")), 0o10666);
  else if (s.marker === "symlink") fs.symlinkSync("../../../outside/secret", path.join(area, "format"));
  else if (s.marker !== "none") fs.writeFileSync(path.join(area, "format"), s.marker);
  if (s.state !== "none") fs.writeFileSync(path.join(area, "state"), s.state);
  if (s.links.length || s.linksLog) {
    fs.mkdirSync(path.join(area, "links"), { recursive: true });
    for (const l of s.links)
      fs.writeFileSync(path.join(area, "links", l.name), Buffer.alloc(l.size, "link data "));
    if (s.linksLog) fs.writeFileSync(path.join(area, "links", ".pershome.meta.a"), s.linksLog);
  }
  writeDir(Buffer.from(home), s.home, contents, { n: 0 });
  return contents;
}

/**
 * What the stick holds that a listing must show (all but `.pershome*`): the number of entries,
 * and how many of them are neither files nor folders (planted symlinks, fifos, devices: shown
 * as empty files that refuse to open, EACCES or ELOOP, by design; src/fs/lower.ts).
 */
export function storedCounts(home: string): { entries: number; special: number } {
  let entries = 0;
  let special = 0;
  const visit = (abs: Buffer): void => {
    for (const e of fs.readdirSync(abs, { encoding: "buffer", withFileTypes: true })) {
      if (e.name.toString("latin1").startsWith(".pershome")) continue;
      entries++;
      if (e.isDirectory()) visit(bp(abs, e.name));
      else if (!e.isFile()) special++;
    }
  };
  visit(Buffer.from(home));
  return { entries, special };
}
