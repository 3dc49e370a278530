/** Open files and directories, by the fh number handed to the kernel. */
import type { Inode } from "./inode.js";

export interface FileHandle {
  kind: "file";
  fd: number;
  inode: Inode;
  writable: boolean;
  /** data written since the record was last brought up to date */
  dirty: boolean;
}

export interface DirHandle {
  kind: "dir";
  inode: Inode;
  /** the names listed at opendir, so offsets stay stable while the directory changes */
  names: string[];
}

export class Handles<T> {
  private next = 1;
  private readonly map = new Map<number, T>();

  add(h: T): number {
    const fh = this.next++;
    this.map.set(fh, h);
    return fh;
  }

  get(fh: number): T | undefined {
    return this.map.get(fh);
  }

  delete(fh: number): T | undefined {
    const h = this.map.get(fh);
    this.map.delete(fh);
    return h;
  }

  values(): IterableIterator<T> {
    return this.map.values();
  }
}
