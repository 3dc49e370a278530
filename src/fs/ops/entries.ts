/**
 * Operations on names: lookup, creating special files and directories, removing, renaming,
 * symlinks (hard links: ops/links.ts). Each returns what the kernel is answered with, or
 * throws FsError.
 */
import { S_IFMT, S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR_OR_BLK } from "./modes.js";
import { MAX_STORED_UNITS, bytesToStored, storedToBytes, twinVariant } from "../../format/names.js";
import type { Kind, MetaRecord } from "../../format/records.js";
import { foldOfBytes } from "../dir-index.js";
import type { EntryParam } from "../../native/types.js";
import { E, fail } from "../errors.js";
import { Inode } from "../inode.js";
import { now } from "../layer.js";
import type { Layer } from "../layer.js";
import type { Lower } from "../lower.js";

const RENAME_NOREPLACE = 1;

export function lookup(L: Layer, parent: Inode, name: string): EntryParam {
  L.settleLink(parent, name);
  const found = L.childFacts(parent, name);
  if (!found) return L.negativeEntry();
  const child = found.inode;
  const e = L.entry(child, L.describe(child, found.facts));
  child.nlookup++;
  return e;
}

export function forget(L: Layer, inode: Inode, n: number): void {
  inode.nlookup -= n;
  if (inode.nlookup > 0 || inode.openCount > 0 || inode === L.root) return;
  if (L.pendingLink?.inode === inode) L.settleLink(); // it still needs the inode's place
  // Directories stay: their index and log must stay the only ones for that directory, and a
  // later lookup may hand out the same inode number again.
  if (inode.isDir && inode.linked) {
    if (inode.dir) L.flushMeta(inode.dir.meta, false);
    return;
  }
  L.inodes.drop(inode);
}

export function mustBeAbsent(L: Layer, parent: Inode, name: string): void {
  if (L.dirIndex(parent).byUser.has(name)) fail(E.EEXIST);
}

/** Adds a freshly stored entry to the parent's index and the inode table. */
export function adopt(L: Layer, parent: Inode, name: string, stored: string, kind: Kind): Inode {
  L.dirIndex(parent).add(name, stored, kind === "d");
  const wanted = L.numberAt(L.pathOf(parent) + "/" + stored);
  const inode = L.inodes.add(wanted, (ino) => new Inode(ino, parent, name, stored, kind));
  parent.children.set(name, inode);
  return inode;
}

/** A special file (symlink, fifo, socket) or an empty regular file: a small stored file + record. */
function makeFileLike(
  L: Layer,
  parent: Inode,
  name: string,
  kind: Kind,
  mode: number,
  content: Buffer,
  extra: Partial<MetaRecord> = {},
): EntryParam {
  mustBeAbsent(L, parent, name);
  // No fsync: a symlink's target is read from its record, the stored content is a copy for
  // other systems. A pull that leaves the copy empty (or zeros) with the record on the stick
  // still shows the link (docs/format.md, rule 3); `pershome check --repair` rewrites the copy.
  const stored = L.createStored(parent, name, (path) => L.lower.writeNew(path, content, false));
  const inode = adopt(L, parent, name, stored, kind);
  const t = now();
  const facts = L.refreshFingerprint(inode, { kind, mode: mode & 0o7777, mtime: t, ctime: t, ...extra });
  L.touchDir(parent);
  inode.nlookup++;
  return L.entry(inode, L.describe(inode, facts)); // one lstat of the new file, not three
}

export function mknod(L: Layer, parent: Inode, name: string, mode: number): EntryParam {
  const type = mode & S_IFMT;
  if (type === S_IFREG || type === 0) return makeFileLike(L, parent, name, "f", mode, Buffer.alloc(0));
  if (type === S_IFIFO) return makeFileLike(L, parent, name, "p", mode, Buffer.alloc(0));
  if (type === S_IFSOCK) return makeFileLike(L, parent, name, "s", mode, Buffer.alloc(0));
  if (S_IFCHR_OR_BLK.has(type)) fail(E.EPERM, "device nodes are never made on a stick");
  fail(E.EINVAL);
}

export function symlink(L: Layer, parent: Inode, name: string, target: Buffer): EntryParam {
  if (target.length === 0) fail(E.ENOENT);
  if (target.length > 4095) fail(E.ENAMETOOLONG);
  return makeFileLike(L, parent, name, "l", 0o777, target, { target: target.toString("latin1") });
}

export function readlink(L: Layer, inode: Inode): Buffer {
  if (inode.kind !== "l") fail(E.EINVAL);
  L.describe(inode);
  const { meta, name } = L.slotOf(inode);
  const target = meta.get(name)?.target;
  if (target === undefined) fail(E.EINVAL);
  return Buffer.from(target, "latin1");
}

export function mkdir(L: Layer, parent: Inode, name: string, mode: number): EntryParam {
  mustBeAbsent(L, parent, name);
  const stored = L.createStored(parent, name, (path) => L.lower.mkdir(path));
  const inode = adopt(L, parent, name, stored, "d");
  L.newDirIndex(inode);
  const t = now();
  L.updateRecord(inode, { kind: "d", mode: mode & 0o7777, mtime: t, ctime: t });
  L.touchDir(parent);
  inode.nlookup++;
  return L.entry(inode);
}

/** Takes one name away from a hard-linked file; its data goes with the last name. */
function dropLinkName(L: Layer, inode: Inode): void {
  const { meta, name } = L.slotOf(inode);
  const links = (meta.get(name)?.nlink ?? 1) - 1;
  if (links > 0) {
    L.updateRecord(inode, { nlink: links, ctime: now() });
    inode.nlink = links;
    return;
  }
  L.keepDescription(inode); // for handles still open
  L.lower.unlink(L.pathOf(inode));
  L.dirIndex(L.links).remove(inode.stored);
  meta.delete(name);
  inode.linked = false;
}

/** The bookkeeping after a name disappeared from the stick (unlink, rmdir, rename over). */
function forgetName(L: Layer, parent: Inode, name: string, stored: string, inode: Inode | null): void {
  const index = L.dirIndex(parent);
  index.remove(name);
  index.entriesDirty = true;
  index.meta.delete(stored);
  if (parent.children.get(name) === inode) parent.children.delete(name);
  if (!inode) return;
  if (inode.kind === "h") dropLinkName(L, inode);
  else inode.linked = false;
}

/**
 * A file about to lose its name keeps its description only if it is open: once the name is
 * gone, only a handle still open lets the kernel ask about it (not a cwd, as for a folder).
 * One lstat less per unlink and rename over.
 */
function keepIfOpen(L: Layer, inode: Inode): void {
  if (inode.openCount > 0) L.keepDescription(inode);
}

/**
 * An unlink while a first link is pending: of the file's first name, the pair becomes a
 * rename to the new name; of the new name, the link is simply dropped. Returns false for any
 * other name (the caller makes the link first: ops/links.ts).
 */
function unlinkPending(L: Layer, parent: Inode, name: string): boolean {
  const p = L.pendingLink;
  if (!p) return false;
  if (parent === p.parent && name === p.name) {
    L.pendingLink = null;
    p.inode.nlink = 1;
    return true;
  }
  if (p.inode.parent !== parent || p.inode.name !== name) return false;
  L.pendingLink = null;
  p.inode.nlink = 1;
  rename(L, parent, name, p.parent, p.name, RENAME_NOREPLACE);
  return true;
}

/**
 * An unlink of a name that a first link which could not be made left in the kernel's cache
 * (ops/links.ts makePending): it goes without a word, nothing of it is on the stick. False
 * for any other name.
 */
function unlinkLost(L: Layer, parent: Inode, name: string): boolean {
  const i = L.lostLinks.findIndex((l) => l.parent === parent && l.name === name);
  if (i < 0 || L.dirIndex(parent).byUser.has(name)) return false;
  L.lostLinks.splice(i, 1);
  return true;
}

export function unlink(L: Layer, parent: Inode, name: string): void {
  if (unlinkPending(L, parent, name) || unlinkLost(L, parent, name)) return;
  L.settleLink();
  const entry = L.dirIndex(parent).byUser.get(name) ?? fail(E.ENOENT);
  const inode = L.child(parent, name);
  if (inode?.isDir) fail(E.EISDIR);
  if (inode && inode.kind !== "h") keepIfOpen(L, inode);
  L.lower.unlink(L.pathOf(parent) + "/" + entry.stored);
  forgetName(L, parent, name, entry.stored, inode);
  L.touchDir(parent);
}

export function rmdir(L: Layer, parent: Inode, name: string): void {
  const entry = L.dirIndex(parent).byUser.get(name) ?? fail(E.ENOENT);
  const inode = L.child(parent, name) ?? fail(E.ENOENT);
  if (!inode.isDir) fail(E.ENOTDIR);
  const index = L.dirIndex(inode);
  if (index.size > 0) fail(E.ENOTEMPTY);
  L.keepDescription(inode);
  index.meta.removeFiles();
  L.lower.rmdir(L.pathOf(inode));
  forgetName(L, parent, name, entry.stored, inode);
  L.touchDir(parent);
}

function isInside(dir: Inode, ancestor: Inode): boolean {
  for (let d: Inode | null = dir; d; d = d.parent) if (d === ancestor) return true;
  return false;
}

export function rename(
  L: Layer,
  parent: Inode,
  name: string,
  newParent: Inode,
  newName: string,
  flags: number,
): void {
  if (flags & ~RENAME_NOREPLACE) fail(E.EINVAL); // RENAME_EXCHANGE/WHITEOUT: FAT cannot do them
  const srcIndex = L.dirIndex(parent);
  const dstIndex = L.dirIndex(newParent);
  const srcEntry = srcIndex.byUser.get(name) ?? fail(E.ENOENT);
  const src = L.child(parent, name) ?? fail(E.ENOENT);
  if (parent === newParent && name === newName) return;
  if (src.isDir && isInside(newParent, src)) fail(E.EINVAL);
  const dstEntry = dstIndex.byUser.get(newName);
  let dst: Inode | null = null;
  let target: string;
  if (dstEntry) {
    if (flags & RENAME_NOREPLACE) fail(E.EEXIST);
    dst = L.child(newParent, newName);
    if (dst === src) return; // two names of one file: POSIX says do nothing
    if (dst?.isDir && !src.isDir) fail(E.EISDIR);
    if (dst && !dst.isDir && src.isDir) fail(E.ENOTDIR);
    if (dst?.isDir) {
      if (L.dirIndex(dst).size > 0) fail(E.ENOTEMPTY);
      L.dirIndex(dst).meta.removeFiles();
    }
    if (dst) keepIfOpen(L, dst);
    target = dstEntry.stored;
  } else {
    target = L.freeStoredName(newParent, newName, parent === newParent ? srcEntry.stored : undefined);
  }
  const record = srcIndex.meta.get(srcEntry.stored);
  const dirPath = L.pathOf(parent) + "/";
  const srcPath = dirPath + srcEntry.stored;
  const dstPath = L.pathOf(newParent) + "/" + target;
  const caseOnly =
    parent === newParent &&
    target !== srcEntry.stored &&
    foldOfBytes(target) === foldOfBytes(srcEntry.stored);
  // vfat ignores a case-only rename: it goes through a stepping-stone name, chosen now so
  // that its record can go to the stick ahead with the target's (format rule 8)
  const step = caseOnly ? steppingStone(L.lower, dirPath, target) : null;
  const stickRename = (lower: Lower): void =>
    step !== null ? caseOnlyRename(lower, srcPath, dirPath, target, step) : lower.rename(srcPath, dstPath);
  // A record the stick may hold is at stake: the records as they are after the rename go to
  // the stick first (format rule 6). A pull that keeps them but not the rename finds the
  // earlier records in the log, matching the files still there (DirMeta.fallback); written
  // after, a pull could keep the rename alone and the moved file would lose its mode. Only
  // the target folder's log must be durable first: across folders, the source log just
  // loses the name (a tombstone), which may follow later.
  // (A rename changes neither the size nor the mtime of the stored file: the record's
  // fingerprint still describes it, no lstat needed before or after.)
  const atStake = Boolean(
    (record && srcIndex.meta.onStick(srcEntry.stored)) || (dstEntry && dstIndex.meta.onStick(target)),
  );
  const t = now();
  // The moved entry's record follows it (same fingerprint); a replaced target's record must
  // not stay behind.
  const moved: MetaRecord | undefined = record && { ...record, name: target, ctime: t };
  // the same record under the stepping stone, for a pull between the stick's two renames
  const stepRecord: MetaRecord | undefined = moved && step !== null ? { ...moved, name: step } : undefined;
  /** the stepping stone is gone from the stick: so goes its record (unless reused since) */
  const stepDone = (): void => {
    if (stepRecord && dstIndex.meta.get(stepRecord.name) === stepRecord)
      dstIndex.meta.delete(stepRecord.name);
  };
  // A folder's rename moves every path under it, and replacing a hard link's last name
  // removes its data (dropLinkName), which must not precede the stick's rename: both are done
  // at once, after any queued rename.
  if (src.isDir || dst?.kind === "h") {
    if (atStake) {
      srcIndex.meta.delete(srcEntry.stored);
      if (moved) dstIndex.meta.set(moved);
      else dstIndex.meta.delete(target);
      if (stepRecord) dstIndex.meta.set(stepRecord);
      L.flushMeta(dstIndex.meta, true);
    }
    stickRename(L.lower);
    srcIndex.meta.delete(srcEntry.stored);
    stepDone();
  } else {
    // A file's rename is written behind (src/fs/renames-behind.ts): answered now, done on the
    // stick with the next batch, after one fsync of the target log for the whole batch. Until
    // then the source name keeps its record, on the stick and through compaction.
    const srcMeta = srcIndex.meta;
    const srcStored = srcEntry.stored;
    L.lower.defer({
      from: srcPath,
      to: dstPath,
      // any record here may be at stake by the time the batch runs (the source may itself be
      // the target of a queued rename whose record is not on the stick yet): the batch's one
      // fsync of this log covers it
      ahead: record || dstEntry ? dstIndex.meta : null,
      // asked when the batch runs: a 2-second flush in between may have put a record there
      atStake: () =>
        Boolean((record && srcMeta.onStick(srcStored)) || (dstEntry && dstIndex.meta.onStick(target))),
      apply: stickRename,
      done: () => {
        srcIndex.keep.delete(srcStored);
        // unless a later rename gave the name a record of its own
        if (srcMeta.get(srcStored) === record) srcMeta.delete(srcStored);
        stepDone();
      },
    });
    srcIndex.keep.add(srcStored);
  }

  srcIndex.remove(name);
  srcIndex.entriesDirty = true;
  if (parent.children.get(name) === src) parent.children.delete(name);
  if (dstEntry) forgetName(L, newParent, newName, dstEntry.stored, dst);
  dstIndex.add(newName, target, src.isDir);
  dstIndex.entriesDirty = true;
  if (src.kind !== "h") {
    L.movedSinceSync.add(src);
    src.parent = newParent;
    src.name = newName;
    src.stored = target;
  }
  newParent.children.set(newName, src);
  if (moved) dstIndex.meta.set(moved);
  else dstIndex.meta.delete(target);
  // (a folder's stepping stone is gone already; a file's goes with its queued rename)
  if (stepRecord && !src.isDir && dst?.kind !== "h") dstIndex.meta.set(stepRecord);
  src.desc = null;
  L.touchDir(parent);
  if (newParent !== parent) L.touchDir(newParent);
}

/**
 * Linux's vfat ignores a rename that only changes case (readme.md -> README.md), so it goes
 * through a stepping-stone name: the target plus twin marks, which decodes to the very same
 * user name, so a crash between the two steps still shows the file under its new name (and,
 * its record written ahead under that name, as it was: docs/format.md, rule 8). Null when
 * every such name is taken or too long: the stick's rename is then tried directly.
 */
function steppingStone(lower: Lower, dirPath: string, target: string): string | null {
  const targetUnicode = bytesToStored(target) ?? target;
  for (let marks = 1; marks < 64; marks++) {
    const unicode = twinVariant(targetUnicode, marks);
    if (unicode.length > MAX_STORED_UNITS) break;
    const step = storedToBytes(unicode);
    if (!lower.stat(dirPath + step)) return step;
  }
  return null;
}

/**
 * The stick's two renames of a case-only rename, through `step` (steppingStone). The stick is
 * asked again: a name taken since would be replaced by the first rename. (Nothing the layer
 * does takes it: a create applies the queued renames first, and a queued rename to that
 * name made the choice see it.)
 */
function caseOnlyRename(lower: Lower, srcPath: string, dirPath: string, target: string, step: string): void {
  const via = lower.stat(dirPath + step) ? steppingStone(lower, dirPath, target) : step;
  if (via === null) {
    lower.rename(srcPath, dirPath + target);
    return;
  }
  lower.rename(srcPath, dirPath + via);
  lower.rename(dirPath + via, dirPath + target);
}
