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
import type { Attr, EntryParam, FuseAddon, FuseReq, OpenInfo } from "./types.js";

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

function packAttr(a: Attr): void {
  flat[0] = a.ino;
  flat[1] = a.mode;
  flat[2] = a.nlink;
  flat[3] = a.uid;
  flat[4] = a.gid;
  flat[5] = a.rdev;
  flat[6] = a.size;
  flat[7] = a.blocks;
  flat[8] = a.blksize;
  flat[9] = a.atimeSec;
  flat[10] = a.atimeNsec;
  flat[11] = a.mtimeSec;
  flat[12] = a.mtimeNsec;
  flat[13] = a.ctimeSec;
  flat[14] = a.ctimeNsec;
}
function packEntry(e: EntryParam): void {
  packAttr(e.attr);
  flat[F_ENTRY_INO] = e.ino;
  flat[F_GENERATION] = e.generation;
  flat[F_ATTR_TIMEOUT] = e.attrTimeout;
  flat[F_ENTRY_TIMEOUT] = e.entryTimeout;
}
function packOpen(fi: OpenInfo): void {
  flat[F_FH] = fi.fh;
  flat[F_OPEN_FLAGS] = (fi.directIo ? 1 : 0) | (fi.keepCache ? 2 : 0) | (fi.nonseekable ? 4 : 0);
}

/**
 * The addon, with the replies of every create, lookup and getattr packed into a typed array
 * in JS (monomorphic property reads) instead of read field by field through N-API: the same
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
};
