/**
 * Loads the libfuse3 low-level addon (src/native/fuse_ll.c, built by node-gyp into
 * src/native/build/Release/pershome_fuse.node) and exposes it with its types.
 *
 * Works from both src/native/ (vitest) and dist/src/native/ (compiled): it walks up from
 * this module to the package root that holds the build output.
 * PERSHOME_FUSE_ADDON=/path/to/pershome_fuse.node overrides the location (used to run
 * an AddressSanitizer build).
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { getSystemErrorName } from "node:util";
import type { Attr, DirentPlus, EntryParam, FuseAddon, FuseReq, OpenInfo } from "./types.js";

export * from "./types.js";

const ADDON_REL = join("src", "native", "build", "Release", "pershome_fuse.node");

/** Absolute path of the built addon; throws if it has not been built. */
export function addonPath(): string {
  const override = process.env["PERSHOME_FUSE_ADDON"];
  if (override) return override;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, ADDON_REL);
    if (existsSync(candidate)) return candidate;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  throw new Error(
    `pershome_fuse.node not found above ${fileURLToPath(import.meta.url)}; ` +
      "build it with: node-gyp rebuild --directory src/native (npm run build does this)",
  );
}

const require = createRequire(import.meta.url);

/** The addon's flat replies (fuse_ll.c, F_*): the arguments go into one shared Float64Array. */
interface FlatReplies {
  flatReplyArray(): Float64Array;
  replyEntryFlat(req: FuseReq): void;
  replyCreateFlat(req: FuseReq): void;
  replyAttrFlat(req: FuseReq): void;
  replyOpenFlat(req: FuseReq): void;
  replyDirentsPlusFlat(req: FuseReq, size: number, count: number, nums: Float64Array, names: Buffer): number;
  /** fsync_many.c: each descriptor's errno (0 when its fsync worked) */
  fsyncMany(fds: Int32Array): Int32Array;
  /** closer.c */
  closeLater(fd: number): void;
  closeWait(): [errno: number, fd: number];
  closesPending(): number;
  /** prefetch.c */
  prefetchFolder(path: string, files: string, subPrefix: string): void;
  prefetchWait(): void;
  prefetchStats(): [folders: number, entries: number, bytes: number, dropped: number, listed: number];
}

const raw = require(addonPath()) as FuseAddon & FlatReplies;

// Indices of the flat array, as fuse_ll.c's F_* enum: the 15 Attr fields, then these.
const F_ENTRY_INO = 15;
const F_GENERATION = 16;
const F_ATTR_TIMEOUT = 17;
const F_ENTRY_TIMEOUT = 18;
const F_FH = 19;
const F_OPEN_FLAGS = 20;
const flat = raw.flatReplyArray();

function packAttr(a: Attr, f = flat, at = 0): void {
  f[at] = a.ino;
  f[at + 1] = a.mode;
  f[at + 2] = a.nlink;
  f[at + 3] = a.uid;
  f[at + 4] = a.gid;
  f[at + 5] = a.rdev;
  f[at + 6] = a.size;
  f[at + 7] = a.blocks;
  f[at + 8] = a.blksize;
  f[at + 9] = a.atimeSec;
  f[at + 10] = a.atimeNsec;
  f[at + 11] = a.mtimeSec;
  f[at + 12] = a.mtimeNsec;
  f[at + 13] = a.ctimeSec;
  f[at + 14] = a.ctimeNsec;
}
function packEntry(e: EntryParam, f = flat, at = 0): void {
  packAttr(e.attr, f, at);
  f[at + F_ENTRY_INO] = e.ino;
  f[at + F_GENERATION] = e.generation;
  f[at + F_ATTR_TIMEOUT] = e.attrTimeout;
  f[at + F_ENTRY_TIMEOUT] = e.entryTimeout;
}
// A readdirplus listing for replyDirentsPlusFlat (fuse_ll.c, DP_*): per entry the entry's
// fields as above, its offset, and where its name ends in one shared names buffer. Both grow
// to the biggest listing packed (the layer packs only what fits the kernel's buffer).
const DP_OFF = F_ENTRY_TIMEOUT + 1;
const DP_NAME_END = DP_OFF + 1;
const DP_STRIDE = DP_NAME_END + 1;
let dpNums = new Float64Array(64 * DP_STRIDE);
let dpNames = Buffer.alloc(8192);

function packDirentsPlus(list: DirentPlus[]): void {
  if (list.length * DP_STRIDE > dpNums.length) dpNums = new Float64Array(list.length * 2 * DP_STRIDE);
  let end = 0;
  for (let i = 0; i < list.length; i++) {
    const d = list[i]!;
    if (end + d.name.length > dpNames.length) {
      const bigger = Buffer.alloc(2 * (end + d.name.length));
      dpNames.copy(bigger, 0, 0, end);
      dpNames = bigger;
    }
    end += d.name.copy(dpNames, end);
    const at = i * DP_STRIDE;
    packEntry(d.entry, dpNums, at);
    dpNums[at + DP_OFF] = d.off;
    dpNums[at + DP_NAME_END] = end;
  }
}

function packOpen(fi: OpenInfo): void {
  flat[F_FH] = fi.fh;
  flat[F_OPEN_FLAGS] = (fi.directIo ? 1 : 0) | (fi.keepCache ? 2 : 0) | (fi.nonseekable ? 4 : 0);
}

/**
 * The addon, with the replies of every create, lookup, getattr and readdirplus packed into typed
 * arrays in JS (monomorphic property reads) instead of read field by field through N-API: the same
 * answers, a fraction of the calls (docs/benchmarks.md, "Fourth round"). The object forms
 * stay in the addon for other callers (test/native's memfs).
 */
export const fuse: FuseAddon = {
  ...raw,
  replyEntry(req, entry) {
    packEntry(entry);
    raw.replyEntryFlat(req);
  },
  replyCreate(req, entry, fi) {
    packEntry(entry);
    packOpen(fi);
    raw.replyCreateFlat(req);
  },
  replyAttr(req, attr, attrTimeout) {
    packAttr(attr);
    flat[F_ATTR_TIMEOUT] = attrTimeout;
    raw.replyAttrFlat(req);
  },
  replyOpen(req, fi) {
    packOpen(fi);
    raw.replyOpenFlat(req);
  },
  replyDirentsPlus(req, size, list) {
    packDirentsPlus(list);
    return raw.replyDirentsPlusFlat(req, size, list.length, dpNums, dpNames);
  },
};

/**
 * fsync every descriptor, several at once (src/native/fsync_many.c: on vfat, entries that
 * share a sector then go out in fewer writes), and return once all are done. Throws the first
 * failure like fs.fsyncSync does (an Error with `code` and `errno`); the others are done anyway.
 */
export function fsyncAll(fds: readonly number[]): void {
  const errs = raw.fsyncMany(Int32Array.from(fds));
  const at = errs.findIndex((e) => e !== 0);
  if (at < 0) return;
  const code = getSystemErrorName(-errs[at]!);
  throw Object.assign(new Error(`${code}: fsync of descriptor ${fds[at]} failed`), {
    code,
    errno: -errs[at]!,
    syscall: "fsync",
  });
}

/**
 * Closes a descriptor on one of the addon's closer threads (src/native/closer.c) and returns at
 * once: vfat mounted with `flush` sleeps 0.1 s in each close of a written file. The descriptor
 * stays open (its number taken) until then; the caller must not use it again.
 */
export function closeLater(fd: number): void {
  raw.closeLater(fd);
}

/** Waits until every closeLater'd descriptor is closed; throws the first close that failed. */
export function waitForCloses(): void {
  const [errno, fd] = raw.closeWait();
  if (errno === 0) return;
  const code = getSystemErrorName(-errno);
  throw Object.assign(new Error(`${code}: close of descriptor ${fd} failed`), {
    code,
    errno: -errno,
    syscall: "close",
  });
}

/**
 * Has one of the addon's prefetch threads (src/native/prefetch.c) read a folder ahead into the
 * kernel's caches: `files` first ("/"-separated names in it, or ""), then an lstat of each
 * entry, then its subfolders' listings and their files whose names start with `subPrefix`
 * ("": none). Returns at once; best effort (dropped when many are queued). All byte strings.
 */
export function prefetchFolder(path: string, files: string, subPrefix: string): void {
  raw.prefetchFolder(path, files, subPrefix);
}

/** Forgets the queued prefetches and waits for those running (no descriptor stays open). */
export function prefetchWait(): void {
  raw.prefetchWait();
}

/** folders read ahead, entries looked at, bytes read, folders dropped (queue full), subfolders listed */
export function prefetchStats(): {
  folders: number;
  entries: number;
  bytes: number;
  dropped: number;
  listed: number;
} {
  const [folders, entries, bytes, dropped, listed] = raw.prefetchStats();
  return { folders, entries, bytes, dropped, listed };
}

/** how many closeLater'd descriptors are not closed yet */
export function closesPending(): number {
  return raw.closesPending();
}
