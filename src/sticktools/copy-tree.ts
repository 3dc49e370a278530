/**
 * Copies a tree onto a mounted pershome layer keeping what POSIX has: modes, symlinks (also
 * dangling ones), hard links, fifos, nanosecond times and user.* xattrs. Resumable: an entry
 * already there and identical (kind, size, mode, mtime to the nanosecond) is skipped, and a
 * file's times are set only once its data is complete, so an interrupted file is copied again.
 * Paths are byte strings (latin1), so any Linux name is copied as it is.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import { StickError, bp, errCode, txt } from "./common.js";
import type { Progress } from "./progress.js";

export type EntryKind = "d" | "f" | "l" | "p" | "s" | "dev";

export interface SrcEntry {
  /** path relative to the source root, byte string; "" for the root */
  rel: string;
  kind: EntryKind;
  st: fs.BigIntStats;
  target?: string;
}

export interface Scan {
  entries: SrcEntry[];
  bytes: number;
  files: number;
  /** relative path -> user.* xattrs */
  xattrs: Map<string, Map<string, Buffer>>;
  /** why xattrs could not be read, if they could not */
  xattrProblem: string | null;
  unreadable: { rel: string; why: string }[];
}

const CHUNK = 1 << 20;

function kindOf(st: fs.BigIntStats): EntryKind {
  if (st.isDirectory()) return "d";
  if (st.isFile()) return "f";
  if (st.isSymbolicLink()) return "l";
  if (st.isFIFO()) return "p";
  if (st.isSocket()) return "s";
  return "dev";
}

const join = (a: string, b: string): string => (b === "" ? a : a === "" ? b : `${a}/${b}`);

/** Walks the source (never following symlinks); directories come before what they hold. */
export function scanTree(root: string): Scan {
  const scan: Scan = {
    entries: [],
    bytes: 0,
    files: 0,
    xattrs: new Map(),
    xattrProblem: null,
    unreadable: [],
  };
  const seenInodes = new Set<string>();
  const walk = (rel: string): void => {
    const abs = join(root, rel);
    let st: fs.BigIntStats;
    try {
      st = fs.lstatSync(bp(abs), { bigint: true });
    } catch (err) {
      scan.unreadable.push({ rel, why: errCode(err) ?? String(err) });
      return;
    }
    const kind = kindOf(st);
    const e: SrcEntry = { rel, kind, st };
    if (kind === "l") {
      try {
        e.target = (fs.readlinkSync(bp(abs), { encoding: "buffer" }) as Buffer).toString("latin1");
      } catch (err) {
        scan.unreadable.push({ rel, why: errCode(err) ?? String(err) });
        return;
      }
    }
    scan.entries.push(e);
    if (rel !== "") scan.files++;
    if (kind === "f") {
      const key = `${st.dev}:${st.ino}`;
      if (st.nlink < 2n || !seenInodes.has(key)) scan.bytes += Number(st.size);
      if (st.nlink > 1n) seenInodes.add(key);
    }
    if (kind === "d") {
      let names: string[];
      try {
        names = (fs.readdirSync(bp(abs), { encoding: "buffer" }) as Buffer[]).map((n) =>
          n.toString("latin1"),
        );
      } catch (err) {
        scan.unreadable.push({ rel, why: errCode(err) ?? String(err) });
        return;
      }
      names.sort();
      for (const n of names) walk(join(rel, n));
    }
  };
  walk("");
  readXattrs(root, scan);
  return scan;
}

/** getfattr's \ooo escapes back to bytes (a byte string). */
function unescapeGetfattr(s: string): string {
  const bytes = Buffer.from(s, "utf8").toString("latin1");
  return bytes.replace(/\\(\\|[0-7]{3})/g, (_, x: string) =>
    x === "\\" ? "\\" : String.fromCharCode(parseInt(x, 8)),
  );
}

/** Parses `getfattr -d -e base64` output: absolute path (byte string) -> name -> value. */
export function parseGetfattr(out: Buffer): Map<string, Map<string, Buffer>> {
  const res = new Map<string, Map<string, Buffer>>();
  let cur: Map<string, Buffer> | null = null;
  for (const line of out.toString("latin1").split("\n")) {
    if (line.startsWith("# file: ")) {
      cur = new Map();
      res.set(unescapeGetfattr(Buffer.from(line.slice(8), "latin1").toString("utf8")), cur);
    } else if (cur && line.includes("=")) {
      const i = line.indexOf("=");
      const name = unescapeGetfattr(Buffer.from(line.slice(0, i), "latin1").toString("utf8"));
      const v = line.slice(i + 1);
      let val: Buffer;
      if (v.startsWith("0s")) val = Buffer.from(v.slice(2), "base64");
      else if (v.startsWith("0x")) val = Buffer.from(v.slice(2), "hex");
      else val = Buffer.from(v.replace(/^"|"$/g, ""), "latin1");
      cur.set(name, val);
    }
  }
  return res;
}

/** All user.* xattrs of a tree with one getfattr run (Node has no xattr calls). */
function readXattrs(root: string, scan: Scan): void {
  const r = spawnSync(
    "getfattr",
    ["-R", "-P", "-h", "-d", "-m", "^user\\.", "-e", "base64", "--absolute-names", "--", txt(root)],
    {
      maxBuffer: 1 << 30,
      encoding: "buffer",
    },
  );
  if (r.error) {
    scan.xattrProblem = `extended attributes were not copied: getfattr is missing (install the "attr" package)`;
    return;
  }
  for (const [abs, attrs] of parseGetfattr(r.stdout)) {
    if (attrs.size === 0) continue;
    const rel = abs === root ? "" : abs.startsWith(root + "/") ? abs.slice(root.length + 1) : null;
    if (rel !== null) scan.xattrs.set(rel, attrs);
  }
}

export function xattrsOfTree(root: string): Map<string, Map<string, Buffer>> {
  const s: Scan = { entries: [], bytes: 0, files: 0, xattrs: new Map(), xattrProblem: null, unreadable: [] };
  readXattrs(root, s);
  return s.xattrs;
}

export class Interrupted extends Error {}

export interface CopyOptions {
  progress?: Progress;
  shouldStop?: () => boolean;
  /** true once the layer daemon is gone (the stick was pulled) */
  layerDead?: () => boolean;
  note?: (msg: string) => void;
}

export interface CopyResult {
  copied: number;
  skippedSame: number;
  /** entries that could not be copied, and why (sockets, devices, too big, unreadable) */
  skipped: { path: string; why: string }[];
}

const GONE = new Set(["EIO", "ENOTCONN", "ENODEV", "ENXIO", "ESHUTDOWN", "ECONNABORTED", "ESTALE"]);

/** Turns an error on the stick side into the plain message for it. */
export function stickFailure(err: unknown, doing: string): StickError | null {
  const code = errCode(err);
  if (code === "ENOSPC" || code === "EDQUOT") {
    return new StickError(
      "full",
      `The stick is full (while ${doing}). What was copied so far is kept. Make room on the stick (or use a bigger one), then run the same command again: it continues where it stopped.`,
    );
  }
  if (code === "EROFS") {
    return new StickError(
      "read-only",
      `The stick became read-only (while ${doing}); it may be failing or its write-protect switch is on. Check it, then run the same command again.`,
    );
  }
  if (code && GONE.has(code)) {
    return new StickError(
      "pulled",
      `The stick stopped answering (while ${doing}: ${code}) — was it pulled out? What was copied so far is kept. Plug it back in and run the same command again: it continues where it stopped.`,
    );
  }
  return null;
}

function sameTimes(a: fs.BigIntStats, b: fs.BigIntStats): boolean {
  return a.mtimeNs === b.mtimeNs;
}

function isUtf8(bytes: string): boolean {
  return Buffer.from(txt(bytes), "utf8").equals(bp(bytes));
}

/** Sets atime and mtime to the nanosecond (JS times are doubles: `touch` makes them exact). */
export function setTimes(dest: string, st: fs.BigIntStats): void {
  const secs = (ns: bigint): number => Number(ns) / 1e9;
  fs.lutimesSync(bp(dest), secs(st.atimeNs), secs(st.mtimeNs));
  const d = fs.lstatSync(bp(dest), { bigint: true });
  if ((d.mtimeNs === st.mtimeNs && d.atimeNs === st.atimeNs) || !isUtf8(dest)) return;
  const stamp = (ns: bigint): string => {
    const neg = ns < 0n;
    const a = neg ? -ns : ns;
    return `@${neg ? "-" : ""}${a / 1_000_000_000n}.${String(a % 1_000_000_000n).padStart(9, "0")}`;
  };
  for (const [flag, ns] of [
    ["-m", st.mtimeNs],
    ["-a", st.atimeNs],
  ] as const) {
    const r = spawnSync("touch", ["-h", flag, "-d", stamp(ns), "--", txt(dest)], { encoding: "utf8" });
    if (r.status !== 0) {
      const m = /: (.*)$/.exec((r.stderr ?? "").trim());
      const code = /No space/.test(m?.[1] ?? "")
        ? "ENOSPC"
        : /Input\/output|not connected/.test(m?.[1] ?? "")
          ? "EIO"
          : "EPERM";
      throw Object.assign(new Error(`touch ${dest}: ${(r.stderr ?? "").trim()}`), { code });
    }
  }
}

function setXattrs(dest: string, attrs: Map<string, Buffer>): void {
  for (const [name, value] of attrs) {
    const r = spawnSync(
      "setfattr",
      ["-h", "-n", txt(name), "-v", "0s" + value.toString("base64"), "--", txt(dest)],
      { encoding: "utf8" },
    );
    if (r.status !== 0)
      throw Object.assign(new Error(`setfattr ${txt(dest)}: ${(r.stderr ?? "").trim()}`), { code: "EXATTR" });
  }
}

function xattrsOf(path: string): Map<string, Buffer> {
  const r = spawnSync(
    "getfattr",
    ["-h", "-d", "-m", "^user\\.", "-e", "base64", "--absolute-names", "--", txt(path)],
    { encoding: "buffer" },
  );
  return [...parseGetfattr(r.stdout ?? Buffer.alloc(0)).values()][0] ?? new Map();
}

function sameXattrs(a: Map<string, Buffer> | undefined, b: Map<string, Buffer>): boolean {
  const x = a ?? new Map<string, Buffer>();
  if (x.size !== b.size) return false;
  for (const [k, v] of x) if (!b.get(k)?.equals(v)) return false;
  return true;
}

function removeEntry(p: string): void {
  const st = fs.lstatSync(bp(p));
  if (st.isDirectory()) fs.rmSync(bp(p), { recursive: true });
  else fs.unlinkSync(bp(p));
}

function lstatOrNull(p: string): fs.BigIntStats | null {
  try {
    return fs.lstatSync(bp(p), { bigint: true });
  } catch (err) {
    if (errCode(err) === "ENOENT") return null;
    throw err;
  }
}

/** Copies `scan` (of srcRoot) into destRoot, which must be on the mounted layer. */
export async function copyTree(
  srcRoot: string,
  destRoot: string,
  scan: Scan,
  o: CopyOptions = {},
): Promise<CopyResult> {
  const res: CopyResult = { copied: 0, skippedSame: 0, skipped: [] };
  const firstOfInode = new Map<string, string>();
  const dirs: SrcEntry[] = [];
  // The copy runs in blocking calls; now and then it lets the event loop run, so that Ctrl-C
  // (a signal handler) and the layer's exit are noticed.
  let lastYield = Date.now();
  const checkStop = async (): Promise<void> => {
    if (Date.now() - lastYield > 50) {
      await new Promise((r) => setImmediate(r));
      lastYield = Date.now();
    }
    if (o.layerDead?.()) throw Object.assign(new Error("the layer stopped"), { code: "ENOTCONN" });
    if (o.shouldStop?.()) throw new Interrupted();
  };
  for (const e of scan.entries) {
    await checkStop();
    const src = join(srcRoot, e.rel);
    const dest = join(destRoot, e.rel);
    const shown = txt(e.rel);
    try {
      const done = await copyOne(e, src, dest, scan, firstOfInode, o, checkStop);
      if (e.kind === "d") dirs.push(e);
      if (done === "same") res.skippedSame++;
      else if (done === "copied") res.copied++;
      else if (done !== "dir") res.skipped.push({ path: shown, why: done.why });
    } catch (err) {
      if (err instanceof Interrupted || err instanceof StickError) throw err;
      const stick = stickFailure(err, `copying ${shown || "/"}`);
      if (stick) throw stick;
      const code = errCode(err);
      if (code === "EFBIG") {
        res.skipped.push({
          path: shown,
          why: "too large for a FAT32 stick (over 4 GiB): use an exFAT stick for it",
        });
        try {
          fs.unlinkSync(bp(dest));
        } catch {
          /* not there */
        }
      } else if (code === "ENAMETOOLONG")
        res.skipped.push({ path: shown, why: "its name is too long for the stick" });
      else res.skipped.push({ path: shown, why: (err as Error).message });
    }
  }
  // Directories last, deepest first: their modes (a 0500 folder) and times (copying into a
  // folder changes its mtime) only once everything inside is there.
  for (const e of dirs.reverse()) {
    await checkStop();
    const dest = join(destRoot, e.rel);
    try {
      const d = fs.lstatSync(bp(dest), { bigint: true });
      if ((Number(d.mode) & 0o7777) !== (Number(e.st.mode) & 0o7777))
        fs.chmodSync(bp(dest), Number(e.st.mode) & 0o7777);
      const want = scan.xattrs.get(e.rel);
      if (want && !sameXattrs(want, xattrsOf(dest))) setXattrs(dest, want);
      if (!sameTimes(d, e.st) || d.atimeNs !== e.st.atimeNs) setTimes(dest, e.st);
    } catch (err) {
      const stick = stickFailure(err, `finishing folder ${txt(e.rel) || "/"}`);
      if (stick) throw stick;
      res.skipped.push({
        path: txt(e.rel),
        why: `its folder times or mode could not be set: ${(err as Error).message}`,
      });
    }
  }
  return res;
}

type One = "same" | "copied" | "dir" | { why: string };

async function copyOne(
  e: SrcEntry,
  src: string,
  dest: string,
  scan: Scan,
  firstOfInode: Map<string, string>,
  o: CopyOptions,
  checkStop: () => Promise<void>,
): Promise<One> {
  const mode = Number(e.st.mode) & 0o7777;
  const cur = e.rel === "" ? null : lstatOrNull(dest);
  const progressFile = (): void => o.progress?.addFile(txt(e.rel));
  switch (e.kind) {
    case "d": {
      if (e.rel === "") return "dir";
      if (cur && !cur.isDirectory()) removeEntry(dest);
      if (!cur || !cur.isDirectory()) fs.mkdirSync(bp(dest), 0o700);
      progressFile();
      return "dir";
    }
    case "s":
      progressFile();
      return { why: "a socket (programs make these when they run): nothing to copy" };
    case "dev":
      progressFile();
      return { why: "a device node: a stick never holds those" };
    case "l": {
      if (cur?.isSymbolicLink() && sameTimes(cur, e.st)) {
        const t = (fs.readlinkSync(bp(dest), { encoding: "buffer" }) as Buffer).toString("latin1");
        if (t === e.target) {
          progressFile();
          return "same";
        }
      }
      if (cur) removeEntry(dest);
      fs.symlinkSync(bp(e.target!), bp(dest));
      setTimes(dest, e.st);
      progressFile();
      return "copied";
    }
    case "p": {
      if (cur?.isFIFO() && (Number(cur.mode) & 0o7777) === mode && sameTimes(cur, e.st)) {
        progressFile();
        return "same";
      }
      if (cur) removeEntry(dest);
      if (!isUtf8(dest)) return { why: "a fifo whose name is not UTF-8: make it again with mkfifo" };
      const r = spawnSync("mkfifo", ["-m", mode.toString(8), "--", txt(dest)], { encoding: "utf8" });
      if (r.status !== 0)
        throw Object.assign(new Error(`mkfifo: ${(r.stderr ?? "").trim()}`), {
          code: /No space/.test(r.stderr ?? "") ? "ENOSPC" : "EIO",
        });
      fs.chmodSync(bp(dest), mode);
      setTimes(dest, e.st);
      progressFile();
      return "copied";
    }
    case "f": {
      const key = `${e.st.dev}:${e.st.ino}`;
      const first = e.st.nlink > 1n ? firstOfInode.get(key) : undefined;
      if (first !== undefined) {
        // another name of a file already copied: a hard link on the stick too
        const f = fs.lstatSync(bp(first), { bigint: true });
        if (cur && cur.ino === f.ino && cur.isFile()) {
          progressFile();
          return "same";
        }
        if (cur) removeEntry(dest);
        fs.linkSync(bp(first), bp(dest));
        progressFile();
        return "copied";
      }
      if (e.st.nlink > 1n) firstOfInode.set(key, dest);
      const want = scan.xattrs.get(e.rel);
      if (
        cur?.isFile() &&
        cur.size === e.st.size &&
        (Number(cur.mode) & 0o7777) === mode &&
        sameTimes(cur, e.st) &&
        (!want || sameXattrs(want, xattrsOf(dest)))
      ) {
        o.progress?.addBytes(Number(e.st.size));
        progressFile();
        return "same";
      }
      if (cur && !cur.isFile()) removeEntry(dest);
      // a file that is one of several names on the stick (from an earlier run) is replaced,
      // not written through, so its other names stay as they were
      if (cur && cur.isFile() && cur.nlink > 1n) fs.unlinkSync(bp(dest));
      let sfd: number;
      try {
        sfd = fs.openSync(bp(src), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      } catch (err) {
        progressFile();
        return { why: `could not be read (${errCode(err) ?? String(err)})` };
      }
      try {
        const dfd = fs.openSync(
          bp(dest),
          fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC,
          0o600,
        );
        try {
          const buf = Buffer.allocUnsafe(CHUNK);
          let pos = 0;
          for (;;) {
            await checkStop();
            const n = fs.readSync(sfd, buf, 0, CHUNK, pos);
            if (n === 0) break;
            let w = 0;
            while (w < n) w += fs.writeSync(dfd, buf, w, n - w, pos + w);
            pos += n;
            o.progress?.addBytes(n);
          }
        } finally {
          fs.closeSync(dfd);
        }
      } finally {
        fs.closeSync(sfd);
      }
      fs.chmodSync(bp(dest), mode);
      if (want) setXattrs(dest, want);
      setTimes(dest, e.st);
      progressFile();
      return "copied";
    }
  }
}

export interface Mismatch {
  path: string;
  what: string;
}

function hashFile(p: string, progress?: Progress): string {
  const h = createHash("sha256");
  const fd = fs.openSync(bp(p), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (let pos = 0; ;) {
      const n = fs.readSync(fd, buf, 0, CHUNK, pos);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      pos += n;
      progress?.addBytes(n / 2);
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest("hex");
}

/** Compares the copy with the source: kind, mode, size, times, content, targets, links, xattrs. */
export function verifyTree(
  srcRoot: string,
  destRoot: string,
  scan: Scan,
  skipped: Set<string>,
  progress?: Progress,
): Mismatch[] {
  const bad: Mismatch[] = [];
  const destInodeOf = new Map<string, bigint>();
  const destX = scan.xattrs.size > 0 ? xattrsOfTree(destRoot) : new Map<string, Map<string, Buffer>>();
  for (const e of scan.entries) {
    const shown = txt(e.rel) || "/";
    if (skipped.has(txt(e.rel)) || e.kind === "s" || e.kind === "dev") continue;
    const dest = join(destRoot, e.rel);
    let d: fs.BigIntStats | null;
    try {
      d = lstatOrNull(dest);
    } catch (err) {
      const stick = stickFailure(err, `checking ${shown}`);
      if (stick) throw stick;
      throw err;
    }
    if (!d) {
      bad.push({ path: shown, what: "missing on the stick" });
      continue;
    }
    if (kindOf(d) !== e.kind) {
      bad.push({ path: shown, what: `is a ${kindOf(d)} on the stick, a ${e.kind} here` });
      continue;
    }
    if (e.kind !== "l" && (Number(d.mode) & 0o7777) !== (Number(e.st.mode) & 0o7777)) {
      bad.push({
        path: shown,
        what: `mode ${(Number(d.mode) & 0o7777).toString(8)} instead of ${(Number(e.st.mode) & 0o7777).toString(8)}`,
      });
    }
    if (d.mtimeNs !== e.st.mtimeNs) bad.push({ path: shown, what: "modification time differs" });
    if (e.kind === "l") {
      const t = (fs.readlinkSync(bp(dest), { encoding: "buffer" }) as Buffer).toString("latin1");
      if (t !== e.target) bad.push({ path: shown, what: "symlink points elsewhere" });
    }
    if (e.kind === "f") {
      if (d.size !== e.st.size) bad.push({ path: shown, what: `size ${d.size} instead of ${e.st.size}` });
      else if (hashFile(join(srcRoot, e.rel), progress) !== hashFile(dest, progress))
        bad.push({ path: shown, what: "content differs" });
      if (e.st.nlink > 1n) {
        const key = `${e.st.dev}:${e.st.ino}`;
        const known = destInodeOf.get(key);
        if (known === undefined) destInodeOf.set(key, d.ino);
        else if (known !== d.ino)
          bad.push({ path: shown, what: "is no longer a hard link of its other names" });
      }
    }
    if (!sameXattrs(scan.xattrs.get(e.rel), destX.get(e.rel === "" ? "" : e.rel) ?? new Map()))
      bad.push({ path: shown, what: "extended attributes differ" });
    if (e.rel !== "") progress?.addFile(shown);
  }
  return bad;
}
