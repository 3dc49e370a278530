/** Attributes and file contents: getattr/setattr, open/create, read/write, fsync, release. */
import fs from "node:fs";
import { SetattrValid as V } from "../../native/types.js";
import type { Attr, EntryParam } from "../../native/types.js";
import type { MetaRecord, Timespec } from "../../format/records.js";
import { describe, fingerprint } from "../../format/describe.js";
import type { StoredFacts } from "../../format/describe.js";
import { log, showPath, warnOnce } from "../../log.js";
import { E, fail, hasCode } from "../errors.js";
import type { FileHandle } from "../handles.js";
import type { Inode } from "../inode.js";
import { now } from "../layer.js";
import type { Layer } from "../layer.js";
import { adopt } from "./entries.js";
import { reportLostLinks } from "./links.js";

const C = fs.constants;
const O_ACCMODE = 3;
const UNCHANGED_ID = 0xffffffff;
const FAT_EPOCH = Date.UTC(1980, 0, 2) / 1000;
const FAT_END = Date.UTC(2107, 11, 30) / 1000;

export function getattr(L: Layer, inode: Inode): Attr {
  return L.attr(inode);
}

/**
 * Before the first change to a file's data: if its record was on the stick for good when
 * writing began, the record marked "being written" goes to the stick first. Otherwise a pull
 * could keep the new data (or a truncation) with the old fingerprint, and the file would lose
 * its mode, times and xattrs as "changed outside pershome" (found by test/crash-states).
 */
function beforeDataChange(L: Layer, inode: Inode): void {
  if (!inode.markPending) return;
  inode.markPending = false;
  if (!inode.linked) return;
  movedFirst(L, inode);
  L.flushMeta(L.slotOf(inode).meta, true);
}

/**
 * A file renamed since its folder was synced: the rename is made durable before the "being
 * written" mark. Otherwise a pull could keep the mark (trusted whatever the data) and the
 * data change but not the rename: the old name would show the new data with defaults, or
 * with the mode of the file it was renamed over (found by test/crash-states).
 */
function movedFirst(L: Layer, inode: Inode): void {
  if (!L.movedSinceSync.has(inode)) return;
  L.movedSinceSync.delete(inode);
  const parent = inode.parent;
  if (parent?.dir?.entriesDirty) {
    L.lower.fsyncDir(L.pathOf(parent));
    parent.dir.entriesDirty = false;
  }
}

/** For a change made without an open handle: the "being written" record first, if it matters. */
function markWriting(L: Layer, inode: Inode): boolean {
  if (!inode.linked) return false;
  const { meta, name } = L.slotOf(inode);
  if (!meta.onStick(name)) return false;
  movedFirst(L, inode);
  L.updateRecord(inode, { writing: true });
  L.flushMeta(meta, true);
  return true;
}

function truncate(L: Layer, inode: Inode, size: number, h: FileHandle | undefined): void {
  if (inode.isDir) fail(E.EISDIR);
  if (inode.kind === "l" || inode.kind === "p" || inode.kind === "s") fail(E.EINVAL);
  if (h?.writable) {
    beforeDataChange(L, inode);
    L.lower.ftruncate(h.fd, size);
    return;
  }
  if (!inode.linked) fail(E.EBADF); // its old stored path may belong to another file by now
  if (inode.writers > 0) beforeDataChange(L, inode);
  else if (markWriting(L, inode)) inode.clearWriting = true;
  const fd = L.lower.open(L.pathOf(inode), C.O_WRONLY);
  try {
    L.lower.ftruncate(fd, size);
  } finally {
    L.lower.close(fd);
  }
}

export function setattr(L: Layer, inode: Inode, attr: Attr, valid: number, h: FileHandle | undefined): Attr {
  // uid/gid are not carried between machines: files belong to the mounting user.
  if (valid & V.UID && attr.uid !== L.opts.uid && attr.uid !== UNCHANGED_ID) fail(E.EPERM);
  if (valid & V.GID && attr.gid !== L.opts.gid && attr.gid !== UNCHANGED_ID) fail(E.EPERM);
  const t = now();
  const changes: Partial<MetaRecord> = { ctime: t };
  if (valid & V.MODE) changes.mode = attr.mode & 0o7777;
  if (valid & V.SIZE) {
    truncate(L, inode, attr.size, h);
    changes.mtime = t;
    if (inode.clearWriting) {
      changes.writing = false;
      inode.clearWriting = false;
    }
  }
  if (valid & V.ATIME_NOW) changes.atime = t;
  else if (valid & V.ATIME) changes.atime = [attr.atimeSec, attr.atimeNsec];
  let mtime: Timespec | undefined;
  if (valid & V.MTIME_NOW) mtime = t;
  else if (valid & V.MTIME) mtime = [attr.mtimeSec, attr.mtimeNsec];
  if (mtime) {
    changes.mtime = mtime;
    setStoredMtime(L, inode, mtime);
  }
  // the reply describes the file from the lstat the fingerprint just took: one lstat, not two
  const facts = L.refreshFingerprint(inode, changes);
  return L.attr(inode, L.describe(inode, facts));
}

/** Gives the stick a matching mtime too, so Windows and macOS show a sensible date. */
function setStoredMtime(L: Layer, inode: Inode, [sec, nsec]: Timespec): void {
  // FAT holds 1980..2107 only; outside that the record alone keeps the time.
  if (!inode.linked || sec < FAT_EPOCH || sec > FAT_END) return;
  if (inode.dir) inode.dir.facts = null;
  try {
    L.lower.setMtime(L.pathOf(inode), sec, nsec);
  } catch {
    // FAT cannot hold every date (before 1980, after 2107): the record keeps the real one.
  }
}

function openFlags(flags: number): number {
  // The kernel computes append offsets itself and passes O_TRUNC here (atomic_o_trunc);
  // O_SYNC/O_DSYNC go down so synchronous writes stay synchronous on the stick.
  return (flags & O_ACCMODE) | (flags & (C.O_TRUNC | C.O_SYNC | C.O_DSYNC));
}

/** `recorded`: the caller has just written the whole record, "being written" included. */
function startHandle(L: Layer, inode: Inode, fd: number, flags: number, recorded = false): FileHandle {
  const writable = (flags & O_ACCMODE) !== C.O_RDONLY;
  inode.openCount++;
  (inode.fds ??= new Set()).add(fd);
  if (writable) {
    inode.writers++;
    // Trust this record even if a pull cuts the write short (docs/format.md, "w").
    if (inode.writers === 1) {
      if (inode.linked) {
        const { meta, name } = L.slotOf(inode);
        inode.markPending = meta.onStick(name) && !(meta.isDurable(name) && meta.get(name)?.writing);
      }
      if (!recorded) L.updateRecord(inode, { writing: true });
    }
  }
  return { kind: "file", fd, inode, writable, dirty: (flags & C.O_TRUNC) !== 0 };
}

export function open(L: Layer, inode: Inode, flags: number): FileHandle {
  if (inode.isDir) fail(E.EISDIR);
  if (inode.kind === "l") fail(E.ELOOP);
  // O_TRUNC truncates on the stick at once: the "being written" record must be there first
  if ((flags & C.O_TRUNC) !== 0 && (flags & O_ACCMODE) !== C.O_RDONLY) {
    if (inode.writers > 0) beforeDataChange(L, inode);
    else markWriting(L, inode);
  }
  const fd = L.lower.open(L.pathOf(inode), openFlags(flags));
  const h = startHandle(L, inode, fd, flags);
  if (flags & C.O_TRUNC) L.updateRecord(inode, { mtime: now(), ctime: now() });
  return h;
}

export function create(
  L: Layer,
  parent: Inode,
  name: string,
  mode: number,
  flags: number,
): { entry: EntryParam; h: FileHandle } {
  const index = L.dirIndex(parent);
  if (index.byUser.has(name)) fail(E.EEXIST);
  let opened: { fd: number; facts: StoredFacts } | undefined;
  const stored = L.createStored(parent, name, (path) => {
    opened = L.lower.createExclusiveFacts(path, openFlags(flags) & ~C.O_TRUNC);
  });
  const { fd, facts } = opened!;
  const inode = adopt(L, parent, name, stored, "f");
  const t = now();
  const writable = (flags & O_ACCMODE) !== C.O_RDONLY;
  // The new file's whole record at once, fingerprinted from the create's own fstat; "w" as
  // startHandle would set it for a writer (docs/format.md, "w").
  const rec: MetaRecord = { name: stored, kind: "f", mode: mode & 0o7777, mtime: t, ctime: t };
  rec.fp = fingerprint(facts);
  if (writable) rec.writing = true;
  index.meta.set(rec);
  L.touchDir(parent);
  const h = startHandle(L, inode, fd, flags, true);
  inode.nlookup++;
  return { entry: L.entry(inode, describe(facts, rec)), h };
}

/**
 * Reads are answered by the addon straight from the stored file's descriptor (spliced into
 * /dev/fuse, no copy through JS): the layer only names the descriptor. Nothing about a read
 * changes the stick, so no rule of docs/format.md is involved.
 */
export function readableFd(h: FileHandle): number {
  return h.fd;
}

export function write(L: Layer, h: FileHandle, data: Buffer, off: number): number {
  beforeDataChange(L, h.inode);
  let n: number;
  try {
    n = L.lower.write(h.fd, data, off);
  } catch (err) {
    if (hasCode(err, "EFBIG")) {
      warnOnce(
        `efbig:${h.inode.ino}`,
        `cannot grow ${showPath(L.pathOf(h.inode))} past 4 GiB: FAT32 cannot hold larger files (use an exFAT stick for such files)`,
      );
    }
    throw err;
  }
  if (!h.dirty) h.dirty = true;
  const t = now();
  L.updateRecord(h.inode, { mtime: t, ctime: t });
  return n;
}

/** Brings the record up to date with data written through this handle. */
function settle(L: Layer, h: FileHandle, closing: boolean): void {
  const inode = h.inode;
  if (!inode.linked) return;
  const stillWriting = inode.writers - (closing && h.writable ? 1 : 0) > 0;
  if (h.dirty || (closing && h.writable && !stillWriting))
    L.refreshFingerprint(inode, { writing: stillWriting }, h.fd);
  h.dirty = false;
}

export function fsync(L: Layer, h: FileHandle, datasync: boolean): void {
  if (datasync) L.lower.fdatasync(h.fd);
  else L.lower.fsync(h.fd);
  settle(L, h, false);
  syncEntry(L, h.inode);
  reportLostLinks(L, h.inode);
}

/** Makes an inode's record and its directory entry durable (after its data). */
export function syncEntry(L: Layer, inode: Inode): void {
  if (!inode.linked) return;
  const { meta } = L.slotOf(inode);
  L.flushMeta(meta, true);
  const parent = inode.parent;
  if (parent?.dir?.entriesDirty) {
    L.lower.fsyncDir(L.pathOf(parent));
    parent.dir.entriesDirty = false;
  }
}

export function release(L: Layer, h: FileHandle): void {
  try {
    settle(L, h, true);
  } catch (err) {
    log("warn", `could not update metadata of ${showPath(String(h.inode.name))}: ${String(err)}`);
  }
  h.inode.openCount--;
  h.inode.fds?.delete(h.fd);
  if (h.inode.fds?.size === 0) h.inode.fds = null;
  if (h.writable) h.inode.writers--;
  L.lower.close(h.fd);
  if (h.inode.nlookup <= 0 && h.inode.openCount === 0 && h.inode !== L.root) L.inodes.drop(h.inode);
  else h.inode.trim();
}

export function fallocate(L: Layer, h: FileHandle, mode: number, off: number, length: number): void {
  if (mode !== 0) fail(E.EOPNOTSUPP);
  if (!h.writable) fail(E.EBADF);
  const size = L.lower.fstat(h.fd).size;
  if (off + length > size) {
    beforeDataChange(L, h.inode);
    L.lower.ftruncate(h.fd, off + length);
    h.dirty = true;
  }
}
