/**
 * Hard links (docs/format.md rule 5). A file's first second name moves its data into
 * .pershome/links/<id> and leaves placeholders under its names, each step durable before the
 * next: about ten fsyncs.
 *
 * git writes every object as a temporary file, link()s it to its final name and unlinks the
 * temporary one. So a first link is answered at once and made on the stick only before the
 * next request (or the 2-second flush, or unmount): if that next request unlinks the first
 * name, the two together are a rename, written behind like any other (rule 6), and the file
 * never becomes a hard link. Nothing is promised of a link before an fsync of its folder, and
 * every fsync is a request that makes it first.
 */
import { randomBytes } from "node:crypto";
import { fingerprint } from "../../format/describe.js";
import { log, showPath } from "../../log.js";
import { E, errnoOf, fail } from "../errors.js";
import type { Inode } from "../inode.js";
import { now } from "../layer.js";
import type { Layer } from "../layer.js";
import type { EntryParam } from "../../native/types.js";
import { mustBeAbsent } from "./entries.js";

/**
 * The requests that leave a pending first link as it is: they neither change the stick nor
 * show the new name (a lookup of that name makes it: ops/entries.ts lookup), and the unlink
 * that may end it decides itself.
 */
const LEAVE_PENDING = new Set(["getattr", "lookup", "unlink"]);

/** lost first links kept for an fsync to report (the oldest go beyond this) */
const MAX_LOST_LINKS = 64;

/**
 * Seconds the kernel may keep a first link's new name (and the file's link count of 2) before
 * asking again. Short, because the stick may still refuse the link: the kernel must not show
 * that name for the hour it keeps others, nor open the file through it (a "new" file of that
 * name would be written into the linked one). One lookup more per first link when it is made.
 */
export const PENDING_LINK_TIMEOUT = 1;

export function link(L: Layer, inode: Inode, newParent: Inode, newName: string): EntryParam {
  L.settleLink(); // one at a time (the kernel's request settled it already)
  if (inode.isDir) fail(E.EPERM);
  if (!inode.linked) fail(E.ENOENT);
  mustBeAbsent(L, newParent, newName);
  if (inode.kind === "l" || inode.kind === "p" || inode.kind === "s")
    fail(E.EPERM, "hard links to special files are not supported on a stick");
  if (inode.kind === "f") {
    L.pendingLink = {
      inode,
      parent: newParent,
      name: newName,
      make: () => makePending(L, inode, newParent, newName),
    };
    inode.nlink = 2;
    L.touchDir(newParent); // in memory: the folder's times change now, as the user expects
    inode.nlookup++;
    return { ...L.entry(inode), attrTimeout: PENDING_LINK_TIMEOUT, entryTimeout: PENDING_LINK_TIMEOUT };
  }
  addName(L, inode, newParent, newName);
  inode.nlookup++;
  return L.entry(inode);
}

/** Before a request: makes a pending first link, unless the request is one that leaves it. */
export function beforeRequest(L: Layer, what: string): void {
  if (L.pendingLink && !LEAVE_PENDING.has(what)) L.settleLink();
}

/**
 * Makes a pending first link on the stick (through Layer.settleLink). Its request was answered
 * already, so a failure is logged and kept for the next fsync of the file or of the new name's
 * folder, which fails with it (as the kernel reports a failed writeback): an fsync must not
 * answer that the link is on the stick. The kernel shows the new name until it asks again
 * (PENDING_LINK_TIMEOUT), then it is gone.
 */
function makePending(L: Layer, inode: Inode, parent: Inode, name: string): void {
  try {
    addName(L, inode, parent, name);
  } catch (err) {
    if (inode.kind !== "h") inode.nlink = 1;
    if (L.lostLinks.length >= MAX_LOST_LINKS) L.lostLinks.shift();
    L.lostLinks.push({ inode, parent, name, errno: errnoOf(err) ?? E.EIO, reported: false });
    log(
      "error",
      `could not make the hard link ${showPath(L.pathOf(parent) + "/" + name)} on the stick ` +
        `(${String(err)}); the file keeps its other name. Remove the new name and make the link ` +
        `again once the stick has room or works.`,
    );
  }
}

/**
 * At the end of an fsync of `inode` (a file, or a folder): fails with the error of a first
 * link of it, or into it, that could not be made since the last such fsync. Each is reported
 * once.
 */
export function reportLostLinks(L: Layer, inode: Inode): void {
  let errno = 0;
  for (const l of L.lostLinks)
    if (!l.reported && (l.inode === inode || l.parent === inode)) {
      l.reported = true;
      errno ||= l.errno;
    }
  if (errno) fail(errno, "a hard link could not be made on the stick");
}

/** The second (or later) name of a file, made on the stick: the data moves first if it has to. */
function addName(L: Layer, inode: Inode, newParent: Inode, newName: string): void {
  mustBeAbsent(L, newParent, newName);
  if (inode.kind !== "h") convertToLink(L, inode);
  const { meta, name } = L.slotOf(inode);
  const count = (meta.get(name)?.nlink ?? 1) + 1;
  // the count goes up (durably) before the new name exists: a crash leaks, never loses
  L.updateRecord(inode, { nlink: count, ctime: now() });
  L.flushMeta(meta, true);
  const id = inode.linkId ?? fail(E.EIO);
  const stored = L.createStored(newParent, newName, (path) => L.lower.writeNew(path, placeholder(id), true));
  const index = L.dirIndex(newParent);
  index.add(newName, stored, false);
  const facts = L.lower.stat(L.pathOf(newParent) + "/" + stored);
  index.meta.set({
    name: stored,
    kind: "h",
    linkId: id,
    fp: facts ? fingerprint(facts) : [0, 0],
  });
  newParent.children.set(newName, inode);
  inode.nlink = count;
  L.touchDir(newParent);
}

function placeholder(id: string): Buffer {
  return Buffer.from(
    `pershome: this file has several names (hard links); its data is in .pershome/links/${id}\r\n`,
  );
}

/** Makes sure .pershome/links exists on the stick. */
function ensureLinksDir(L: Layer): void {
  const areaPath = L.pathOf(L.area);
  if (!L.lower.stat(areaPath)) L.lower.mkdir(areaPath);
  const linksPath = L.pathOf(L.links);
  if (!L.lower.stat(linksPath)) {
    L.lower.mkdir(linksPath);
    // durable before data moves in: a pull must not take the folder and the data with it
    L.lower.fsyncDir(areaPath);
    L.newDirIndex(L.links);
  }
}

/** Moves a file's data into .pershome/links and leaves a placeholder under its name. */
function convertToLink(L: Layer, inode: Inode): void {
  ensureLinksDir(L);
  const id = randomBytes(12).toString("hex");
  const parent = inode.parent ?? fail(E.ESTALE);
  const dataPath = L.pathOf(inode);
  const { meta } = L.slotOf(inode);
  const desc = L.describe(inode);
  const cur = meta.get(inode.stored);
  const links = L.dirIndex(L.links);
  const linkPath = L.pathOf(L.links) + "/" + id;
  // 1. the data's record (with the count) is durable before anything moves
  links.meta.set({
    ...(cur ?? { mode: desc.mode & 0o7777, mtime: desc.mtime }),
    name: id,
    kind: "f",
    nlink: 1,
    writing: true,
  });
  L.flushMeta(links.meta, true);
  // 2. the data moves, and its new entry is made durable before anything replaces the old
  // one; 3. a placeholder takes its old name, its content durable before a record
  // fingerprints it (a pull could otherwise keep an empty placeholder: test/crash-states);
  // 4. the placeholder's entry made durable, 5. then the name's hard-link record: a name
  // gone with its "h" record left can then only mean it was deleted elsewhere, and check
  // --repair puts the data back only where the old record says (docs/format.md, rule 5)
  L.lower.rename(dataPath, linkPath);
  L.lower.fsyncDir(L.pathOf(L.links));
  links.add(id, id, false);
  L.lower.writeNew(dataPath, placeholder(id), true);
  L.lower.fsyncDir(L.pathOf(parent));
  const facts = L.lower.stat(dataPath);
  meta.set({
    name: inode.stored,
    kind: "h",
    linkId: id,
    fp: facts ? fingerprint(facts) : [0, 0],
  });
  L.flushMeta(meta, true);
  inode.kind = "h";
  inode.linkId = id;
  inode.parent = L.links;
  inode.stored = id;
  L.inodes.becameLink(inode);
  parent.children.set(inode.name, inode);
  L.refreshFingerprint(inode, { writing: inode.writers > 0 });
}
