/**
 * Inodes as the kernel knows them. Numbers are handed out once and never reused while
 * mounted (generation stays 0). A file with several hard links is one inode, keyed by its
 * link id, whatever name it was reached by.
 */
import type { Description } from "../format/describe.js";
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

export class Inode {
  nlookup = 0;
  /** open file handles; an unlinked inode lives on while this is above 0 */
  openCount = 0;
  /** open handles that may write */
  writers = 0;
  /**
   * stick file descriptors open on this inode (an unlinked file is only reachable through
   * them); null when none. Made on first open: most inodes are never opened (memory).
   */
  fds: Set<number> | null = null;
  /** the index of a directory, built on first use */
  dir: DirIndex | null = null;
  /** children the kernel holds, by user name (directories only) */
  readonly children: Map<string, Inode>;
  /** the description kept for when the inode has no name any more (Layer.describe `keep`) */
  desc: Description | null = null;
  nlink = 1;
  /**
   * Its record was durable when writing began: the record saying "being written" (w) must
   * be durable before the first change of its data reaches the stick (docs/format.md, rule 3).
   */
  markPending = false;
  /** a truncate without a handle marked it "being written": unmark once done */
  clearWriting = false;

  constructor(
    readonly ino: number,
    /** parent directory; null for the root and for hard-linked files (data in .pershome/links) */
    public parent: Inode | null,
    /** user name in the parent, byte string */
    public name: string,
    /** stored name in the parent, byte string */
    public stored: string,
    public kind: Kind,
    /** hard-link id (kind "h") */
    public linkId: string | null = null,
  ) {
    this.children = kind === "d" ? new Map() : NO_CHILDREN;
  }

  /** false once its last name is gone */
  linked = true;

  get isDir(): boolean {
    return this.kind === "d";
  }
}

export class InodeTable {
  private next = ROOT_INO + 1;
  private readonly byIno = new Map<number, Inode>();
  /** hard-linked files by link id */
  readonly byLink = new Map<string, Inode>();

  add(make: (ino: number) => Inode): Inode {
    const inode = make(this.next++);
    this.byIno.set(inode.ino, inode);
    if (inode.linkId) this.byLink.set(inode.linkId, inode);
    return inode;
  }

  addRoot(inode: Inode): void {
    this.byIno.set(inode.ino, inode);
  }

  get(ino: number): Inode | undefined {
    return this.byIno.get(ino);
  }

  /** Drops an inode the kernel no longer references. */
  drop(inode: Inode): void {
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
