/** Directory listing, directory fsync and statfs. */
import type { Dirent, DirentPlus, StatfsInfo } from "../../native/types.js";
import type { DirHandle } from "../handles.js";
import type { Inode } from "../inode.js";
import { NO_ATTR } from "../layer.js";
import type { Layer } from "../layer.js";
import { reportLostLinks } from "./links.js";
import { S_IFDIR, S_IFLNK, S_IFIFO, S_IFREG, S_IFSOCK, TYPE_OF } from "./modes.js";

const align8 = (n: number): number => (n + 7) & ~7;
/** struct fuse_dirent is 24 bytes + name; fuse_direntplus adds fuse_entry_out (128 bytes) */
const direntSize = (nameLen: number): number => align8(24 + nameLen);
const direntPlusSize = (nameLen: number): number => align8(128 + 24 + nameLen);
const DOTS = [".", ".."];
/** the home's parent is outside the mount */
const UNKNOWN_INO = 0xffffffff;

export function opendir(L: Layer, inode: Inode): DirHandle {
  const index = L.dirIndex(inode);
  return { kind: "dir", inode, names: [...index.byUser.keys()] };
}

/** d_ino of "." and "..": the numbers stat shows for them. */
function dotNumber(h: DirHandle, i: number): number {
  if (i === 0) return h.inode.stIno;
  return h.inode.parent?.stIno ?? UNKNOWN_INO;
}

/**
 * A listed name with no inode for the kernel to take (node id 0): the attributes only give
 * d_ino and d_type. For "." and "..", and for a child the kernel holds already.
 */
function nameOnly(L: Layer, name: string, ino: number, mode: number, off: number): DirentPlus {
  const attr = { ...NO_ATTR, ino, mode };
  return {
    name: Buffer.from(name, "latin1"),
    entry: { ...L.negativeEntry(), attr, attrTimeout: 0, entryTimeout: 0 },
    off,
  };
}

/** The type bits readdir can tell without touching the stick. */
function typeOf(L: Layer, dir: Inode, name: string): number {
  const index = L.dirIndex(dir);
  const entry = index.byUser.get(name);
  if (!entry) return S_IFREG;
  if (entry.isDir) return S_IFDIR;
  const kind = index.meta.get(entry.stored)?.kind;
  return kind === "l" ? S_IFLNK : kind === "p" ? S_IFIFO : kind === "s" ? S_IFSOCK : S_IFREG;
}

export function readdir(L: Layer, h: DirHandle, size: number, off: number): Dirent[] {
  const out: Dirent[] = [];
  let used = 0;
  for (let i = off; i < h.names.length + 2; i++) {
    const name = i < 2 ? DOTS[i]! : h.names[i - 2]!;
    const need = direntSize(Buffer.byteLength(name, "latin1"));
    if (used + need > size) break;
    used += need;
    // d_ino is what stat will show (ls -i, find, tar and rsync -H compare them)
    const ino = i < 2 ? dotNumber(h, i) : L.numberOfName(h.inode, name);
    out.push({
      name: Buffer.from(name, "latin1"),
      ino: ino === 0 ? UNKNOWN_INO : ino,
      mode: i < 2 ? S_IFDIR : typeOf(L, h.inode, name),
      off: i + 1,
    });
  }
  return out;
}

/**
 * readdirplus: every entry the kernel does not hold yet comes with its attributes, and counts
 * as a lookup. Only entries that fit are made, so lookup counts stay exact.
 */
export function readdirplus(L: Layer, h: DirHandle, size: number, off: number): DirentPlus[] {
  const out: DirentPlus[] = [];
  let used = 0;
  for (let i = off; i < h.names.length + 2; i++) {
    const name = i < 2 ? DOTS[i]! : h.names[i - 2]!;
    const need = direntPlusSize(Buffer.byteLength(name, "latin1"));
    if (used + need > size) break;
    if (i < 2) {
      used += need;
      out.push(nameOnly(L, name, dotNumber(h, i), S_IFDIR, i + 1));
      continue;
    }
    const found = L.childFacts(h.inode, name);
    if (!found) continue; // removed since opendir
    used += need;
    const child = found.inode;
    if (child.nlookup > 0 && !found.facts && !child.kernelStale) {
      // The kernel holds this child already, with attributes it keeps for the cache timeout
      // (git status lstat's every file, then lists every folder): only its name, number and
      // type, as for "." above, and no second lstat. Unless they changed since they were sent
      // (files just written, as before an `ls -l`): then the kernel has let them go, and the
      // entry brings them back instead of a getattr per name.
      out.push(nameOnly(L, name, child.stIno, TYPE_OF[child.kind], i + 1));
      continue;
    }
    const entry = L.entry(child, L.describe(child, found.facts));
    out.push({ name: Buffer.from(name, "latin1"), entry, off: i + 1 });
  }
  return out;
}

export function fsyncdir(L: Layer, inode: Inode): void {
  const index = L.dirIndex(inode);
  L.flushMeta(index.meta, true);
  L.lower.fsyncDir(L.pathOf(inode));
  index.entriesDirty = false;
  reportLostLinks(L, inode);
}

export function statfs(L: Layer): StatfsInfo {
  const st = L.lower.statfs();
  return {
    bsize: st.bsize,
    frsize: st.bsize,
    blocks: st.blocks,
    bfree: st.bfree,
    bavail: st.bavail,
    files: st.files,
    ffree: st.ffree,
    favail: st.ffree,
    namemax: 255,
  };
}
