/**
 * The layer's state and the few careful helpers every operation shares: where an inode lives
 * on the stick, how it looks to the user, and how its record is changed. The operations
 * themselves are in ops/, one file per family.
 */
import { describe, recordApplies, fingerprint } from "../format/describe.js";
import type { Description, StoredFacts } from "../format/describe.js";
import { encodeName, storedToBytes, twinVariant, MAX_STORED_UNITS, MAX_NAME_BYTES } from "../format/names.js";
import type { Kind, MetaRecord, Timespec } from "../format/records.js";
import type { Attr, EntryParam } from "../native/types.js";
import { showPath, warnOnce, log } from "../log.js";
import { DirIndex, foldOfBytes } from "./dir-index.js";
import type { DirMeta } from "./dir-meta.js";
import { E, fail, hasCode } from "./errors.js";
import { numberOfPath } from "./ino-numbers.js";
import { Inode, InodeTable, ROOT_INO } from "./inode.js";
import type { Lower } from "./lower.js";
import { RenamesBehind } from "./renames-behind.js";

export const AREA = ".pershome";
export const LINKS = "links";
/** the name of the home directory's own record, in the .pershome area's log */
const HOME_RECORD = "home";

export interface LayerOptions {
  uid: number;
  gid: number;
  /** seconds the kernel may cache attributes and names */
  attrTimeout: number;
  entryTimeout: number;
  /**
   * How many records of folders' logs to hold before idle ones are dropped, to be read again
   * when used (trimMetas; default META_BUDGET).
   */
  metaBudget?: number;
}

/** records held before trimMetas drops idle folders' ones: ~10 MiB of them */
export const META_BUDGET = 50_000;

export function now(): Timespec {
  const ns = process.hrtime.bigint() - hrBase + wallBase;
  return [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
}
const wallBase = BigInt(Date.now()) * 1_000_000n;
const hrBase = process.hrtime.bigint();

/** Stored names to try for a new user name: its plain encoding, then case-twin variants. */
function* storedCandidates(name: string): Generator<string> {
  if (name.length > MAX_NAME_BYTES) fail(E.ENAMETOOLONG);
  const base = encodeName(name);
  for (let twin = 0; twin < 64; twin++) {
    const unicode = twinVariant(base, twin);
    if (unicode.length > MAX_STORED_UNITS) fail(E.ENAMETOOLONG);
    yield storedToBytes(unicode);
  }
}

/**
 * Could the stick say a stored name exists although the directory's index has no name of the
 * same fold? Only for a name with a `~` (a VFAT short alias has one) or outside ASCII (the
 * stick's case folding may differ from ours there).
 */
function mayHideFromIndex(stored: string): boolean {
  return !/^[\x20-\x7d]*$/.test(stored);
}

/** The attributes of a negative entry: the kernel ignores them (no lstat of anything for it). */
export const NO_ATTR: Attr = Object.freeze({
  ino: 0,
  mode: 0,
  nlink: 0,
  uid: 0,
  gid: 0,
  rdev: 0,
  size: 0,
  blocks: 0,
  blksize: 0,
  atimeSec: 0,
  atimeNsec: 0,
  mtimeSec: 0,
  mtimeNsec: 0,
  ctimeSec: 0,
  ctimeNsec: 0,
});

export interface PendingLink {
  inode: Inode;
  /** the new name */
  parent: Inode;
  name: string;
  /** makes it on the stick */
  make(): void;
}

/**
 * A first hard link answered but then not made on the stick: the next fsync reports it, and
 * the kernel may show its name until it is removed.
 */
export interface LostLink {
  inode: Inode;
  parent: Inode;
  name: string;
  errno: number;
  reported: boolean;
}

export class Layer {
  readonly inodes = new InodeTable();
  readonly root: Inode;
  /** .pershome (not visible to the user) and .pershome/links */
  readonly area: Inode;
  readonly links: Inode;
  private readonly dirtyMetas = new Set<DirMeta>();
  /** folders whose logs were read, oldest first (trimMetas) */
  private readonly loadedMetas = new Set<DirMeta>();
  /** records held by them, as counted at each read and at the last sweep */
  private heldRecords = 0;
  private sweepAbove: number;
  /** folders' records dropped by trimMetas so far (the request counts' log line shows it) */
  metaDrops = 0;
  /** the stick, with file renames written behind (src/fs/renames-behind.ts) */
  readonly lower: RenamesBehind;
  /** files renamed since their folder was last synced (see ops/files.ts beforeDataChange) */
  readonly movedSinceSync = new WeakSet<Inode>();
  /** a first hard link answered but not yet made on the stick (ops/links.ts) */
  pendingLink: PendingLink | null = null;
  /** first links that could not be made after their answer (ops/links.ts makePending) */
  readonly lostLinks: LostLink[] = [];

  constructor(
    lower: Lower,
    readonly opts: LayerOptions,
  ) {
    this.lower = new RenamesBehind(lower, (meta) => this.flushMeta(meta, true));
    this.sweepAbove = opts.metaBudget ?? META_BUDGET;
    this.root = new Inode(ROOT_INO, null, "", "", "d");
    this.root.nlookup = 1;
    this.inodes.addRoot(this.root);
    this.area = new Inode(0, this.root, AREA, AREA, "d");
    this.links = new Inode(0, this.area, LINKS, LINKS, "d");
  }

  // ---- where things are -------------------------------------------------------------

  /** Stored path of an inode (byte string); for a hard-linked file, its data in .pershome/links. */
  pathOf(inode: Inode): string {
    if (inode.ino === ROOT_INO) return this.lower.root;
    if (!inode.parent) fail(E.ESTALE);
    return this.pathOf(inode.parent) + "/" + inode.stored;
  }

  /**
   * The inode number wanted by whatever is at a stored path (from pathOf): a hash of the path
   * below the stick's folder, so the same wherever the stick is mounted.
   */
  numberAt(path: string): number {
    return numberOfPath(path.slice(this.lower.root.length));
  }

  /**
   * The inode number readdir tells for a name (d_ino), without making an inode: the one a
   * lookup would show now. (A record that turns out stale at lookup, or a number taken in
   * between, can still make them differ; both are rare and change only the number.)
   */
  numberOfName(dir: Inode, name: string): number {
    const known = dir.children.get(name);
    if (known && this.inodes.get(known.ino) === known) return known.stIno;
    const index = this.dirIndex(dir);
    const entry = index.byUser.get(name);
    if (!entry) return 0;
    const rec = index.meta.get(entry.stored);
    if (rec?.kind === "h" && rec.linkId) {
      const link = this.inodes.byLink.get(rec.linkId);
      if (link) return link.stIno;
      return this.inodes.numbers.peek(this.numberAt(this.linkPath(rec.linkId)));
    }
    return this.inodes.numbers.peek(this.numberAt(this.pathOf(dir) + "/" + entry.stored));
  }

  /** where a hard-linked file's data is */
  private linkPath(id: string): string {
    return this.pathOf(this.links) + "/" + id;
  }

  dirIndex(dir: Inode): DirIndex {
    if (dir.dir) return dir.dir;
    if (!dir.isDir) fail(E.ENOTDIR);
    const index = new DirIndex(
      this.lower,
      () => this.pathOf(dir),
      true,
      (m) => this.dirtyMetas.add(m),
      (m) => this.metaLoaded(m),
    );
    if (dir === this.area) index.keep.add(HOME_RECORD);
    dir.dir = index;
    return index;
  }

  /** Index for a directory the layer just created (empty, nothing to read). */
  newDirIndex(dir: Inode): DirIndex {
    dir.dir = new DirIndex(
      this.lower,
      () => this.pathOf(dir),
      false,
      (m) => this.dirtyMetas.add(m),
      (m) => this.metaLoaded(m),
    );
    return dir.dir;
  }

  /** Which log holds an inode's record, and under which name. */
  slotOf(inode: Inode): { meta: DirMeta; name: string } {
    if (inode.ino === ROOT_INO) return { meta: this.dirIndex(this.area).meta, name: HOME_RECORD };
    if (!inode.parent) fail(E.ESTALE);
    return { meta: this.dirIndex(inode.parent).meta, name: inode.stored };
  }

  // ---- how things look --------------------------------------------------------------

  /** The record of a stored entry, if it still applies to what is on the stick. */
  freshRecord(meta: DirMeta, name: string, facts: StoredFacts, where: string): MetaRecord | undefined {
    const rec = meta.get(name);
    if (rec && recordApplies(rec, facts)) return rec;
    // a record written ahead of a change the crash did not keep: the earlier one matches
    const older = meta.fallback(name, facts);
    if (older) return older;
    if (rec) {
      warnOnce(`stale:${where}`, `${showPath(where)} changed outside pershome; its old metadata is dropped`);
      meta.delete(name);
    }
    return undefined;
  }

  /**
   * Fresh description of an inode from the stick (or the last one, once it has no name).
   * `known`: the stored entry's facts, when the caller has just read them (no second lstat).
   */
  describe(inode: Inode, known?: StoredFacts): Description {
    if (!inode.linked && inode.desc) {
      // no name on the stick any more: only its open descriptors still tell its size
      const fd = inode.fds?.values().next().value;
      if (fd !== undefined) inode.desc = { ...inode.desc, size: this.lower.fstat(fd).size };
      return inode.desc;
    }
    // a file unlinked while not open (ops/entries.ts keepIfOpen): its old stored path may
    // belong to another file by now
    if (!inode.linked) fail(E.ENOENT);
    const path = this.pathOf(inode);
    const index = inode.kind === "d" ? inode.dir : null;
    const facts = known ?? index?.facts ?? this.lower.stat(path);
    if (index && facts?.isDir) index.facts = facts;
    if (!facts) {
      if (inode.desc) return inode.desc;
      fail(E.ENOENT);
    }
    const { meta, name } = this.slotOf(inode);
    const rec = this.freshRecord(meta, name, facts, path);
    const desc = describe(facts, inode.ino === ROOT_INO ? rec && { ...rec, kind: "d" } : rec);
    if (inode.kind === "h") inode.nlink = rec?.nlink ?? 1;
    else if (inode.kind === "d") inode.nlink = 2 + this.dirIndex(inode).subdirs;
    return desc;
  }

  /**
   * describe(), keeping the description on the inode: called right before its name goes, so
   * that handles still open (and a cwd) can be answered once nothing on the stick is left.
   * Only then: a description kept on every inode described weighs on a big listing's memory.
   */
  keepDescription(inode: Inode): Description {
    const desc = this.describe(inode);
    inode.desc = desc;
    return desc;
  }

  /** The attributes the kernel is answered with (so it holds them fresh from now on). */
  attr(inode: Inode, desc = this.describe(inode)): Attr {
    if (inode.kernelStale) {
      inode.kernelStale = false;
      inode.trim();
    }
    return {
      ino: inode.stIno,
      mode: desc.mode,
      nlink: inode.linked ? inode.nlink : 0,
      uid: this.opts.uid,
      gid: this.opts.gid,
      rdev: 0,
      size: desc.size,
      blocks: Math.ceil(desc.size / 512),
      blksize: 65536,
      atimeSec: desc.atime[0],
      atimeNsec: desc.atime[1],
      mtimeSec: desc.mtime[0],
      mtimeNsec: desc.mtime[1],
      ctimeSec: desc.ctime[0],
      ctimeNsec: desc.ctime[1],
    };
  }

  entry(inode: Inode, desc = this.describe(inode)): EntryParam {
    return {
      ino: inode.ino,
      generation: 0,
      attr: this.attr(inode, desc),
      attrTimeout: this.opts.attrTimeout,
      entryTimeout: this.opts.entryTimeout,
    };
  }

  /** "No such name", cached by the kernel for the entry timeout; its attributes are unused. */
  negativeEntry(): EntryParam {
    return {
      ino: 0,
      generation: 0,
      attr: NO_ATTR,
      attrTimeout: 0,
      entryTimeout: this.opts.entryTimeout,
    };
  }

  // ---- names ------------------------------------------------------------------------

  /** The inode for a user name in a directory, creating it from the stick if needed. */
  child(dir: Inode, name: string): Inode | null {
    return this.childFacts(dir, name)?.inode ?? null;
  }

  /**
   * child(), also giving the stored entry's facts when it had to read them (a new inode),
   * so that describing it right after needs no second lstat.
   */
  childFacts(dir: Inode, name: string): { inode: Inode; facts?: StoredFacts } | null {
    const known = dir.children.get(name);
    if (known && this.inodes.get(known.ino) === known) return { inode: known };
    const index = this.dirIndex(dir);
    const entry = index.byUser.get(name);
    if (!entry) return null;
    const path = this.pathOf(dir) + "/" + entry.stored;
    const facts = this.lower.stat(path);
    if (!facts) {
      warnOnce(`gone:${path}`, `${showPath(path)} vanished from the stick`);
      return null;
    }
    const rec = this.freshRecord(index.meta, entry.stored, facts, path);
    let inode: Inode | null = null;
    if (rec?.kind === "h" && rec.linkId) inode = this.linkInode(rec.linkId, path);
    if (!inode) {
      const kind: Kind = rec && rec.kind !== "h" ? rec.kind : facts.isDir ? "d" : "f";
      inode = this.inodes.add(this.numberAt(path), (ino) => new Inode(ino, dir, name, entry.stored, kind));
    }
    dir.children.set(name, inode);
    // a hard-linked file's facts are those of its data in .pershome/links, not of this name
    return inode.kind === "h" ? { inode } : { inode, facts };
  }

  /** The inode of a hard-linked file, if its data is in .pershome/links. */
  private linkInode(id: string, namePath: string): Inode | null {
    const known = this.inodes.byLink.get(id);
    if (known) return known;
    let present = false;
    try {
      present = this.dirIndex(this.links).byUser.has(id);
    } catch (err) {
      if (!hasCode(err, "ENOENT")) throw err;
      this.links.dir = null;
    }
    if (!present) {
      warnOnce(
        `link:${namePath}`,
        `${showPath(namePath)} is a hard link whose data is missing; shown as the file it is`,
      );
      return null;
    }
    return this.inodes.add(
      this.numberAt(this.linkPath(id)),
      (ino) => new Inode(ino, this.links, id, id, "h", id),
    );
  }

  /**
   * Stores a new entry under a free stored name: tries the plain encoding, then case-twin
   * variants, calling `create` (which must fail with EEXIST if the stick already has the
   * name, e.g. O_EXCL) until one is free. Returns the stored name used.
   */
  createStored(dir: Inode, name: string, create: (path: string) => void): string {
    const index = this.dirIndex(dir);
    const dirPath = this.pathOf(dir);
    for (const stored of storedCandidates(name)) {
      if (index.foldTaken(stored)) continue;
      try {
        create(dirPath + "/" + stored);
        index.entriesDirty = true;
        return stored;
      } catch (err) {
        if (!hasCode(err, "EEXIST")) throw err;
        index.markTaken(stored);
      }
    }
    fail(E.EEXIST);
  }

  /**
   * A free stored name for a rename target (rename has no O_EXCL). The index knows every name
   * in the directory, folded as FAT and exFAT fold ASCII; what it cannot see is a VFAT 8.3
   * alias (`REPORT~1.ODT`, always with a `~`) or a non-ASCII name the stick folds otherwise:
   * only such names are checked with an lstat.
   */
  freeStoredName(dir: Inode, name: string, moving?: string): string {
    const index = this.dirIndex(dir);
    const dirPath = this.pathOf(dir);
    for (const stored of storedCandidates(name)) {
      // a case-only rename of the same file may reuse its own slot
      const sameFile = moving !== undefined && foldOfBytes(moving) === foldOfBytes(stored);
      if (!sameFile && index.foldTaken(stored)) continue;
      if (!sameFile && mayHideFromIndex(stored) && this.lower.stat(dirPath + "/" + stored)) {
        index.markTaken(stored);
        continue;
      }
      return stored;
    }
    fail(E.EEXIST);
  }

  // ---- records ----------------------------------------------------------------------

  /**
   * Changes an inode's record: the current one (or one made from how it looks now) + changes.
   * `known`: the stored file's facts, if the caller has just taken them (spares an lstat).
   */
  updateRecord(inode: Inode, changes: Partial<MetaRecord>, known?: StoredFacts): MetaRecord | null {
    if (changes.ctime) inode.kernelStale = true;
    if (!inode.linked) {
      // an open file whose names are all gone: nothing on the stick to describe any more
      const d = this.describe(inode);
      inode.desc = {
        ...d,
        mode: changes.mode !== undefined ? (d.mode & ~0o7777) | changes.mode : d.mode,
        mtime: changes.mtime ?? d.mtime,
        atime: changes.atime ?? d.atime,
        ctime: changes.ctime ?? d.ctime,
      };
      return null;
    }
    const { meta, name } = this.slotOf(inode);
    const cur = meta.get(name);
    let base = cur;
    if (!base) {
      const desc = this.describe(inode, known);
      base = {
        name,
        kind: inode.kind === "h" ? "f" : inode.kind,
        mode: desc.mode & 0o7777,
        mtime: desc.mtime,
      };
    }
    const rec: MetaRecord = { ...base, ...changes, name };
    if (inode.ino === ROOT_INO) rec.kind = "d";
    if (!inode.isDir && !rec.fp) {
      // a file's record only applies with a fingerprint (docs/format.md, "Fingerprints")
      const facts = this.lower.stat(this.pathOf(inode));
      if (facts) rec.fp = fingerprint(facts);
    }
    meta.set(rec);
    inode.desc = null;
    return rec;
  }

  /**
   * Takes a new fingerprint of the stored file into the record (after the layer changed it).
   * Returns the facts it read, for the caller's reply (undefined if it read none).
   * `fd`: a descriptor open on the stored file, fstat'ed instead of an lstat by path (no path
   * to build or walk, and no queued rename of the name to settle first: src/fs/renames-behind.ts).
   */
  refreshFingerprint(inode: Inode, extra: Partial<MetaRecord> = {}, fd?: number): StoredFacts | undefined {
    if (inode.isDir || !inode.linked) {
      if (Object.keys(extra).length > 0) this.updateRecord(inode, extra);
      return undefined;
    }
    const facts = fd !== undefined ? this.lower.fstat(fd) : this.lower.stat(this.pathOf(inode));
    if (!facts) return undefined;
    this.updateRecord(inode, { ...extra, fp: fingerprint(facts) }, facts);
    return facts;
  }

  /** Marks a directory's contents as changed now (mtime and ctime). */
  touchDir(dir: Inode): void {
    const t = now();
    this.updateRecord(dir, { mtime: t, ctime: t });
  }

  // ---- persistence ------------------------------------------------------------------

  /**
   * Makes a first hard link that was answered but not yet made on the stick (ops/links.ts);
   * with a name, only if that is the link's new name (a lookup needs it in the index).
   */
  settleLink(parent?: Inode, name?: string): void {
    const p = this.pendingLink;
    if (!p || (parent && (p.parent !== parent || p.name !== name))) return;
    this.pendingLink = null;
    p.make();
  }

  private metaLoaded(meta: DirMeta): void {
    this.loadedMetas.add(meta);
    this.heldRecords += meta.held;
  }

  /**
   * Before a request: once the folders' logs read hold more records than the budget, drops
   * those of idle folders not used since the last sweep (oldest read first), down to three
   * quarters of it. A daemon that listed a whole home then holds what is in use, not all of
   * it; a folder dropped costs one read of its log when used again. Not while a rename or a
   * first hard link waits: their later steps compare records of the folders they touch.
   */
  trimMetas(): void {
    if (this.heldRecords <= this.sweepAbove || this.pendingLink || this.lower.queued > 0) return;
    const budget = this.opts.metaBudget ?? META_BUDGET;
    let held = 0;
    for (const m of this.loadedMetas) held += m.held;
    const target = Math.floor((budget * 3) / 4);
    for (const m of [...this.loadedMetas]) {
      if (held <= target) break;
      if (m.held === 0) {
        this.loadedMetas.delete(m); // dropped already, or nothing to drop
      } else if (m.used) {
        m.used = false; // a second chance, at the back of the line
        this.loadedMetas.delete(m);
        this.loadedMetas.add(m);
      } else if (m.idle) {
        held -= m.held;
        m.unload();
        this.loadedMetas.delete(m);
        this.metaDrops++;
      }
    }
    this.heldRecords = held;
    // what could not go (in use, or written in this mount) is not swept again at every request
    this.sweepAbove = Math.max(budget, held + Math.floor(budget / 4));
  }

  /** Writes every pending record (and queued rename); with `sync`, makes them durable. */
  flushAll(sync: boolean): void {
    this.settleLink();
    try {
      this.lower.settle();
    } catch (err) {
      log("error", `could not rename on the stick: ${String(err)}`);
    }
    for (const meta of [...this.dirtyMetas]) {
      try {
        meta.flush(sync);
        if (!meta.dirty) this.dirtyMetas.delete(meta);
      } catch (err) {
        log("error", `could not write metadata: ${String(err)}; will retry`);
      }
    }
    try {
      // vfat: removed files let go once their folders are written (the 2-second flush only
      // when removals pause for a second)
      this.lower.settleRemoved?.(sync ? 0 : 1000);
    } catch (err) {
      log("error", `could not write removals to the stick: ${String(err)}`);
    }
  }

  /** Writes a log's pending records, after any queued rename (whose records may be in it). */
  flushMeta(meta: DirMeta, sync: boolean): void {
    this.lower.settle();
    meta.flush(sync);
    if (!meta.dirty) this.dirtyMetas.delete(meta);
  }
}
