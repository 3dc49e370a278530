/**
 * Renames written behind (docs/format.md rule 6, docs/benchmarks.md "Third round"). A rename of
 * a file is answered at once: the layer's index is the truth while mounted, and the stick's
 * own rename waits in a queue. The queue is applied as one batch — one fsync per target log
 * for the records written ahead that are at stake, then the stick's renames in order — before
 * anything could see the stick differ from the index:
 *
 * - any fsync, and any other rename on the stick;
 * - any call that reads or changes a path a queued rename moves from or to (compared without
 *   case, as the stick compares names), or a folder above one; a metadata log counts as its
 *   folder;
 * - `settle()`: the layer's 2-second flush, any log the layer writes (Layer.flushMeta),
 *   unmount, and more than MAX_QUEUED renames.
 *
 * Other changes go on around the queue: git stores each object as a new file renamed into
 * place (ops/links.ts), and a batch per object would cost an fsync per object. Writes to an
 * open file do not wait either: where a data change must follow its file's rename on the
 * stick, ops/files.ts (movedFirst) syncs the folder first, which settles.
 *
 * Only the lstat of a folder above a queued rename passes (the parent's getattr after every
 * rename): a folder's times come from its record, and nothing else of it changes.
 *
 * Crash promises: nothing is promised of a rename before an fsync of its folder (or of the
 * file), and fsync settles the queue first. The queued renames' records go to the stick
 * ahead, as rule 6 allows, durably when the stick may hold a record they replace; the source
 * name keeps its record (on the stick and through compaction) until its stick rename is done.
 */
import type fs from "node:fs";
import type { StoredFacts } from "../format/describe.js";
import { log, showPath } from "../log.js";
import type { DirMeta } from "./dir-meta.js";
import type { Lower, LowerEntry } from "./lower.js";

/** more renames than this in the queue are applied at once (bounds the work at a later call) */
const MAX_QUEUED = 4096;

export interface QueuedRename {
  /** stored paths the rename moves from and to */
  from: string;
  to: string;
  /** the log that holds records written ahead for the moved name: durable before the rename */
  ahead: DirMeta | null;
  /**
   * May the stick hold a record of either name now (the moved file's, or one the rename
   * replaces)? Only then must `ahead` be durable first: a pull that kept the rename but not
   * the new record would otherwise lose what the stick held. A new file renamed before its
   * record ever reached the stick has nothing to lose.
   */
  atStake(): boolean;
  /** the stick's rename itself (on the lower underneath, never through the queue) */
  apply(lower: Lower): void;
  /** bookkeeping once the stick's rename is done (the source name's record goes) */
  done(): void;
}

/** A path as the stick compares it: without case (over-matching only settles more often). */
const folded = (path: string): string => path.toLowerCase();

/** the folder of a metadata log slot (docs/format.md), or null for any other path */
function logFolder(path: string): string | null {
  return /\/\.pershome\.meta\.[ab]$/.test(path) ? path.slice(0, path.lastIndexOf("/")) : null;
}

export class RenamesBehind implements Lower {
  readonly root: string;
  private queue: QueuedRename[] = [];
  /** folded paths queued renames move from or to */
  private readonly moved = new Set<string>();
  /** folded paths of the folders above them, with how many queued paths each holds */
  private readonly above = new Map<string, number>();
  private settling = false;

  /**
   * @param inner the stick
   * @param syncLog makes a log's records durable (the layer's flushMeta with sync)
   */
  constructor(
    readonly inner: Lower,
    private readonly syncLog: (meta: DirMeta) => void,
  ) {
    this.root = inner.root;
  }

  get queued(): number {
    return this.queue.length;
  }

  /**
   * Queues a rename, before the caller changes the layer's index and records for it (a full
   * queue is applied first, while those still describe the stick without this rename).
   */
  defer(r: QueuedRename): void {
    if (this.queue.length >= MAX_QUEUED) this.settle();
    this.queue.push(r);
    for (const p of [r.from, r.to]) {
      const f = folded(p);
      this.moved.add(f);
      for (let i = f.lastIndexOf("/"); i > 0; i = f.lastIndexOf("/", i - 1)) {
        const dir = f.slice(0, i);
        this.above.set(dir, (this.above.get(dir) ?? 0) + 1);
      }
    }
  }

  /**
   * Applies every queued rename to the stick. If the records cannot be made durable, nothing
   * is renamed and the queue stays for the next try (the caller's operation fails with the
   * error). A stick rename that fails is logged and the others go on: the name stays as it
   * was on the stick, its data untouched.
   */
  settle(): void {
    if (this.queue.length === 0 || this.settling) return;
    this.settling = true;
    try {
      // 1. the records written ahead that are at stake, durable: one fsync per target log for
      // the whole batch. A rename from a name an earlier one in the batch moved to counts as
      // at stake (its file's record on the stick is under an older name).
      const logs = new Set<DirMeta>();
      const landed = new Set<string>();
      for (const r of this.queue) {
        if (r.ahead && !logs.has(r.ahead) && (landed.has(folded(r.from)) || r.atStake())) logs.add(r.ahead);
        landed.add(folded(r.to));
      }
      for (const meta of logs) this.syncLog(meta);
      const batch = this.queue;
      this.queue = [];
      this.moved.clear();
      this.above.clear();
      // 2. the stick's renames, in the order they were made, durable together (the lower's
      // batch: on vfat the moved entries and folders are written once for all); 3. only then
      // may the source names lose their records
      const renamed: QueuedRename[] = [];
      this.inner.beginRenames?.();
      try {
        for (const r of batch) {
          try {
            r.apply(this.inner);
            renamed.push(r);
          } catch (err) {
            log(
              "error",
              `could not rename ${showPath(r.from)} to ${showPath(r.to)} on the stick: ${String(err)}`,
            );
          }
        }
      } finally {
        this.inner.endRenames?.();
      }
      for (const r of renamed) r.done();
    } finally {
      this.settling = false;
    }
  }

  /** Settles first if `path` is one a queued rename moves (or, with `dirs`, a folder above one). */
  private touching(path: string, dirs: boolean): void {
    if (this.queue.length === 0) return;
    const f = folded(path);
    if (this.moved.has(f) || (dirs && this.above.has(f))) this.settle();
  }

  /** A change of `path` (a log stands for its folder): the queue goes first if it is involved. */
  private beforeChange(path: string): void {
    this.touching(logFolder(path) ?? path, true);
  }

  // ---- reads: settle only when they would see the difference ----------------------

  stat(path: string): StoredFacts | null {
    this.touching(path, false);
    return this.inner.stat(path);
  }
  fstat(fd: number): StoredFacts {
    return this.inner.fstat(fd);
  }
  list(dir: string): LowerEntry[] {
    this.touching(dir, true);
    return this.inner.list(dir);
  }
  open(path: string, flags: number, mode?: number): number {
    this.touching(path, true);
    return this.inner.open(path, flags, mode);
  }
  read(fd: number, buf: Buffer, length: number, position: number): number {
    return this.inner.read(fd, buf, length, position);
  }
  close(fd: number): void {
    this.inner.close(fd);
  }
  statfs(): fs.StatsFs {
    return this.inner.statfs();
  }
  readSmall(path: string, max: number): Buffer | null {
    this.touching(path, true);
    return this.inner.readSmall(path, max);
  }
  prefetch(dir: string, files: string[], subPrefix: string): void {
    this.inner.prefetch?.(dir, files, subPrefix);
  }

  // ---- changes: the queue goes first where it is involved, and before any fsync ---------

  createExclusive(path: string, flags: number): number {
    this.beforeChange(path);
    return this.inner.createExclusive(path, flags);
  }
  createExclusiveFacts(path: string, flags: number): { fd: number; facts: StoredFacts } {
    this.beforeChange(path);
    return this.inner.createExclusiveFacts(path, flags);
  }
  write(fd: number, data: Buffer, position: number | null): number {
    return this.inner.write(fd, data, position);
  }
  fsync(fd: number): void {
    this.settle();
    this.inner.fsync(fd);
  }
  fdatasync(fd: number): void {
    this.settle();
    this.inner.fdatasync(fd);
  }
  ftruncate(fd: number, size: number): void {
    this.inner.ftruncate(fd, size);
  }
  fsyncDir(path: string): void {
    this.settle();
    this.inner.fsyncDir(path);
  }
  mkdir(path: string): void {
    this.beforeChange(path);
    this.inner.mkdir(path);
  }
  rmdir(path: string): void {
    this.beforeChange(path);
    this.inner.rmdir(path);
  }
  unlink(path: string): void {
    this.beforeChange(path);
    this.inner.unlink(path);
  }
  unlinkIfExists(path: string): void {
    this.beforeChange(path);
    this.inner.unlinkIfExists(path);
  }
  rename(from: string, to: string): void {
    this.settle();
    this.inner.rename(from, to);
  }
  setMtime(path: string, sec: number, nsec: number): void {
    this.beforeChange(path);
    this.inner.setMtime(path, sec, nsec);
  }
  writeNew(path: string, data: Buffer, sync: boolean): void {
    this.beforeChange(path);
    this.inner.writeNew(path, data, sync);
  }
  append(path: string, data: Buffer, sync: boolean): void {
    this.beforeChange(path);
    this.inner.append(path, data, sync);
  }
  beginRenames(): void {
    this.inner.beginRenames?.();
  }
  endRenames(): void {
    this.inner.endRenames?.();
  }
  settleRemoved(ifIdleMs?: number): void {
    this.inner.settleRemoved?.(ifIdleMs);
  }
}
