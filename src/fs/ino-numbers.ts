/**
 * The inode numbers users see (st_ino, d_ino), apart from the FUSE node ids the kernel and the
 * daemon talk with. A node id is handed out in lookup order, so it differs at every mount; git
 * keeps st_ino in its index and re-reads every file whose number changed, so `git status`
 * after a login would read a whole repository again. The number shown is instead a hash of
 * where the file is on the stick, taken when the node is made and kept for its life in the
 * mount (a rename does not change it): the same at the next mount unless the file moved.
 */

/** the root's number, as for the node id (FUSE_ROOT_ID) */
export const ROOT_NUMBER = 1;

/**
 * Numbers stay below 2^31. git keeps only the low 32 bits of st_ino in its index anyway; a
 * 32-bit program calling stat() without large-file support fails with EOVERFLOW on a number
 * of 2^32 or more; and below 2^31 V8 keeps a number unboxed (memory: one per inode held).
 * With 100,000 files about two pairs clash (resolved by InoNumbers.claim, the later one of a
 * pair then showing a number that may differ at the next mount): a cost of two files re-read.
 */
const LIMIT = 2 ** 31;

/**
 * A 31-bit hash of a path in the area (a byte string, relative to the stick's folder so that
 * where the stick is mounted does not matter): two 32-bit multiply-xorshift lanes mixed at
 * the end (the cyrb53 construction), cheap and with no allocation.
 */
export function numberOfPath(path: string): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  const n = (h1 ^ h2) & (LIMIT - 1);
  // 0 means "no inode" to readdir's callers and 1 is the root
  return n <= ROOT_NUMBER ? n + 2 : n;
}

/** The numbers in use in one mount: no two live nodes ever show the same one. */
export class InoNumbers {
  private readonly used = new Set<number>([ROOT_NUMBER]);

  /** The number a node wanting `wanted` would get now: it, or the next free one. */
  peek(wanted: number): number {
    let n = wanted;
    while (this.used.has(n)) n = n + 1 >= LIMIT ? ROOT_NUMBER + 1 : n + 1;
    return n;
  }

  /** Takes peek(wanted) for a new node. */
  claim(wanted: number): number {
    const n = this.peek(wanted);
    this.used.add(n);
    return n;
  }

  release(n: number): void {
    if (n !== ROOT_NUMBER) this.used.delete(n);
  }

  get size(): number {
    return this.used.size;
  }
}
