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

const MIN_SLOTS = 1024;

/**
 * The numbers in use in one mount: no two live nodes ever show the same one. One is held per
 * inode the kernel knows (100,000 after an `ls -lR` of as many files), so they are kept in a
 * flat open-addressing table of int32 rather than a Set (about 1 MB at 100,000 instead of 2.5,
 * and no large rehash on the heap): linear probing, at most half full, 0 marking a free slot
 * (0 is never a number in use), deletion by shifting the rest of the run back (no tombstones).
 */
export class InoNumbers {
  private slots = new Int32Array(MIN_SLOTS);
  /** 32 - log2(slots.length): home() keeps the top bits of the hash */
  private shift = 32 - Math.log2(MIN_SLOTS);
  private count = 0;

  constructor() {
    this.insert(ROOT_NUMBER);
  }

  /** The number a node wanting `wanted` would get now: it, or the next free one. */
  peek(wanted: number): number {
    // 0 would read as a free slot (and means "no inode" to readdir): never handed out
    let n = wanted > ROOT_NUMBER && wanted < LIMIT ? wanted : ROOT_NUMBER + 1;
    while (this.has(n)) n = n + 1 >= LIMIT ? ROOT_NUMBER + 1 : n + 1;
    return n;
  }

  /** Takes peek(wanted) for a new node. */
  claim(wanted: number): number {
    const n = this.peek(wanted);
    this.insert(n);
    return n;
  }

  release(n: number): void {
    if (n === ROOT_NUMBER) return;
    const slots = this.slots;
    const mask = slots.length - 1;
    let i = this.home(n);
    for (;;) {
      const s = slots[i]!;
      if (s === 0) return; // not in use
      if (s === n) break;
      i = (i + 1) & mask;
    }
    // Backward shift: move up each later entry of the run whose home is not between the hole
    // and it (cyclically), so that every entry stays reachable from its home without a gap.
    let hole = i;
    for (let j = (i + 1) & mask; slots[j] !== 0; j = (j + 1) & mask) {
      const h = this.home(slots[j]!);
      if (((j - h) & mask) >= ((j - hole) & mask)) {
        slots[hole] = slots[j]!;
        hole = j;
      }
    }
    slots[hole] = 0;
    this.count--;
    // shrink after a mass forget (the kernel dropping its cache), never below the first size
    if (slots.length > MIN_SLOTS && this.count * 8 < slots.length) this.resize(slots.length / 2);
  }

  get size(): number {
    return this.count;
  }

  private has(n: number): boolean {
    const slots = this.slots;
    const mask = slots.length - 1;
    for (let i = this.home(n); ; i = (i + 1) & mask) {
      const s = slots[i]!;
      if (s === n) return true;
      if (s === 0) return false;
    }
  }

  /** Adds n, known not to be in the table. */
  private insert(n: number): void {
    if ((this.count + 1) * 2 > this.slots.length) this.resize(this.slots.length * 2);
    const slots = this.slots;
    const mask = slots.length - 1;
    let i = this.home(n);
    while (slots[i] !== 0) i = (i + 1) & mask;
    slots[i] = n;
    this.count++;
  }

  /**
   * The slot n starts looking from: the top bits of a multiplicative hash, since numbers
   * moved on by peek() come in runs (n, n+1, ...) that would otherwise fill runs of slots.
   */
  private home(n: number): number {
    return Math.imul(n, 0x9e3779b1) >>> this.shift;
  }

  private resize(size: number): void {
    const old = this.slots;
    this.slots = new Int32Array(size);
    this.shift = 32 - Math.log2(size);
    this.count = 0;
    for (const n of old) if (n !== 0) this.insert(n);
  }
}
