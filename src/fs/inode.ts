/**
 * Inodes as the kernel knows them. Node ids are handed out once and never reused while
 * mounted (generation stays 0). A file with several hard links is one inode, keyed by its
 * link id, whatever name it was reached by. The inode number users see (st_ino) is another
 * number, stable across mounts: src/fs/ino-numbers.ts.
 */
import type { Description } from "../format/describe.js";
import { ByNodeId } from "./by-node-id.js";
import { InoNumbers, ROOT_NUMBER } from "./ino-numbers.js";
import type { Kind } from "../format/records.js";
import type { DirIndex } from "./dir-index.js";

export const ROOT_INO = 1;

/** The children of an inode that is not a directory: none, and none can be added. */
class NoChildren extends Map<string, Inode> {
  override set(): this {
    throw new Error("only a directory has children");
  }
}
const NO_CHILDREN: Map<string, Inode> = new NoChildren();

/**
 * What only some inodes need: open files, directories, hard links, one about to lose its name.
 * Kept apart so that the common inode (a name the kernel looked up, never opened) is small:
 * a listing of 100,000 files holds 100,000 of them.
 */
class InodeExtra {
  openCount = 0;
  writers = 0;
  fds: Set<number> | null = null;
  desc: Description | null = null;
  markPending = false;
  clearWriting = false;
  kernelStale = false;
  linkId: string | null = null;
  children: Map<string, Inode> = NO_CHILDREN;
  dir: DirIndex | null = null;
  nlink = 1;

  /** Nothing here differs from a new one's (keep in step with the fields above). */
  get blank(): boolean {
    return (
      this.openCount === 0 &&
      this.writers === 0 &&
      this.fds === null &&
      this.desc === null &&
      !this.markPending &&
      !this.clearWriting &&
      !this.kernelStale &&
      this.linkId === null &&
      this.children === NO_CHILDREN &&
      this.dir === null &&
      this.nlink === 1
    );
  }
}

export class Inode {
  nlookup = 0;
  /** the number users see (st_ino, d_ino), set by InodeTable.add; 0 for the hidden area */
  stIno = 0;
  /** false once its last name is gone */
  linked = true;
  private x: InodeExtra | null = null;

  constructor(
    /** the FUSE node id */
    readonly ino: number,
    /** parent directory; null for the root and for hard-linked files (data in .pershome/links) */
    public parent: Inode | null,
    /** user name in the parent, byte string */
    public name: string,
    /** stored name in the parent, byte string */
    public stored: string,
    public kind: Kind,
    /** hard-link id (kind "h") */
    linkId: string | null = null,
  ) {
    if (kind === "d") this.more().children = new Map();
    if (linkId !== null) this.more().linkId = linkId;
  }

  private more(): InodeExtra {
    return (this.x ??= new InodeExtra());
  }

  /**
   * Lets the side object go once nothing in it differs from a new one's (after a file's last
   * close): a file that was opened once then weighs no more than one only looked up.
   */
  trim(): void {
    if (this.x?.blank) this.x = null;
  }

  get isDir(): boolean {
    return this.kind === "d";
  }

  /** the index of a directory, built on first use */
  get dir(): DirIndex | null {
    return this.x?.dir ?? null;
  }
  set dir(d: DirIndex | null) {
    if (d !== null || this.x) this.more().dir = d;
  }

  get nlink(): number {
    return this.x?.nlink ?? 1;
  }
  set nlink(n: number) {
    if (n !== 1 || this.x) this.more().nlink = n;
  }

  /** children the kernel holds, by user name (directories only) */
  get children(): Map<string, Inode> {
    return this.x?.children ?? NO_CHILDREN;
  }

  /** open file handles; an unlinked inode lives on while this is above 0 */
  get openCount(): number {
    return this.x?.openCount ?? 0;
  }
  set openCount(n: number) {
    this.more().openCount = n;
  }

  /** open handles that may write */
  get writers(): number {
    return this.x?.writers ?? 0;
  }
  set writers(n: number) {
    this.more().writers = n;
  }

  /**
   * stick file descriptors open on this inode (an unlinked file is only reachable through
   * them); null when none. Made on first open: most inodes are never opened (memory).
   */
  get fds(): Set<number> | null {
    return this.x?.fds ?? null;
  }
  set fds(s: Set<number> | null) {
    if (s !== null || this.x) this.more().fds = s;
  }

  /** the description kept for when the inode has no name any more (Layer.describe `keep`) */
  get desc(): Description | null {
    return this.x?.desc ?? null;
  }
  set desc(d: Description | null) {
    if (d !== null || this.x) this.more().desc = d;
  }

  /**
   * Its record was durable when writing began: the record saying "being written" (w) must
   * be durable before the first change of its data reaches the stick (docs/format.md, rule 3).
   */
  get markPending(): boolean {
    return this.x?.markPending ?? false;
  }
  set markPending(b: boolean) {
    if (b || this.x) this.more().markPending = b;
  }

  /** a truncate without a handle marked it "being written": unmark once done */
  get clearWriting(): boolean {
    return this.x?.clearWriting ?? false;
  }
  set clearWriting(b: boolean) {
    if (b || this.x) this.more().clearWriting = b;
  }

  /**
   * Its attributes changed (a record change with a new ctime: data written, renamed, linked,
   * chmod, xattrs, a folder's entries) since they were last sent to the kernel (Layer.attr).
   * The kernel drops its copy at such changes, so a listing sends them again (ops/dirs.ts
   * readdirplus) rather than leave a getattr per name to follow.
   */
  get kernelStale(): boolean {
    return this.x?.kernelStale ?? false;
  }
  set kernelStale(b: boolean) {
    if (b || this.x) this.more().kernelStale = b;
  }

  /** hard-link id (kind "h") */
  get linkId(): string | null {
    return this.x?.linkId ?? null;
  }
  set linkId(id: string | null) {
    if (id !== null || this.x) this.more().linkId = id;
  }
}

export class InodeTable {
  private next = ROOT_INO + 1;
  private readonly byIno = new ByNodeId<Inode>();
  /** hard-linked files by link id */
  readonly byLink = new Map<string, Inode>();
  /** the st_ino numbers of the inodes in the table */
  readonly numbers = new InoNumbers();

  /**
   * Adds a new inode, made with the next node id; it shows the number `wanted` (numberOfPath
   * of where it is on the stick), or the next free one if another inode has it.
   */
  add(wanted: number, make: (ino: number) => Inode): Inode {
    const inode = make(this.next++);
    inode.stIno = this.numbers.claim(wanted);
    this.byIno.set(inode.ino, inode);
    if (inode.linkId) this.byLink.set(inode.linkId, inode);
    return inode;
  }

  addRoot(inode: Inode): void {
    inode.stIno = ROOT_NUMBER;
    this.byIno.set(inode.ino, inode);
  }

  get(ino: number): Inode | undefined {
    return this.byIno.get(ino);
  }

  /** Drops an inode the kernel no longer references. */
  drop(inode: Inode): void {
    if (this.byIno.get(inode.ino) === inode) this.numbers.release(inode.stIno);
    this.byIno.delete(inode.ino);
    if (inode.linkId && this.byLink.get(inode.linkId) === inode) this.byLink.delete(inode.linkId);
    const parent = inode.parent;
    if (parent && parent.children.get(inode.name) === inode) parent.children.delete(inode.name);
  }

  becameLink(inode: Inode): void {
    if (inode.linkId) this.byLink.set(inode.linkId, inode);
  }

  get size(): number {
    return this.byIno.size;
  }
}
