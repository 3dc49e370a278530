/**
 * The one way the layer reaches the stick. Every call takes byte-string paths (see
 * src/format/names.ts), never follows a symlink in the last component (O_NOFOLLOW, lstat,
 * lutimes), and only ever sees paths the layer built from names it listed itself, so it
 * stays inside the stick's /pershome.
 *
 * `Lower` is the interface every layer module uses; `NodeLower` is the real one (plain
 * synchronous node:fs calls; on vfat, fsyncs that may go together and the closes of written
 * files go to the addon's threads: native/fsync_many.c, native/closer.c). A recording wrapper
 * (src/fs/recording-lower.ts) implements the same interface for the crash-state tests
 * (test/crash-states/, docs/robustness.md): nothing in the layer may reach the stick any
 * other way.
 */
import fs from "node:fs";
import type { StoredFacts } from "../format/describe.js";
import { log, showPath, warnOnce } from "../log.js";
import {
  closeLater,
  closesPending,
  fsyncAll,
  prefetchFolder,
  prefetchWait,
  waitForCloses,
} from "../native/index.js";
import { hasCode } from "./errors.js";

const C = fs.constants;
const b = (p: string): Buffer => Buffer.from(p, "latin1");

export interface LowerEntry {
  /** stored name, byte string */
  name: string;
  isDir: boolean;
}

export function factsOf(st: fs.BigIntStats): StoredFacts {
  const ns = st.mtimeNs;
  return {
    isDir: st.isDirectory(),
    isFile: st.isFile(),
    size: Number(st.size),
    mtimeMs: Number(ns / 1_000_000n),
    mtime: [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)],
  };
}

/** Every call the layer makes to the stick. Paths are byte strings (latin1). */
export interface Lower {
  /** the stick's pershome directory, byte string */
  readonly root: string;
  /** lstat, or null when the entry does not exist. */
  stat(path: string): StoredFacts | null;
  fstat(fd: number): StoredFacts;
  list(dir: string): LowerEntry[];
  /** Opens a stored regular file (O_NOFOLLOW, O_NONBLOCK); anything else is refused. */
  open(path: string, flags: number, mode?: number): number;
  /** Creates a file that must not exist yet (O_EXCL). */
  createExclusive(path: string, flags: number): number;
  /** createExclusive(), also giving the new file's facts (from the one fstat open does anyway). */
  createExclusiveFacts(path: string, flags: number): { fd: number; facts: StoredFacts };
  close(fd: number): void;
  read(fd: number, buf: Buffer, length: number, position: number): number;
  write(fd: number, data: Buffer, position: number | null): number;
  fsync(fd: number): void;
  fdatasync(fd: number): void;
  ftruncate(fd: number, size: number): void;
  /** fsync a directory, so that new and removed entries in it are on the stick. */
  fsyncDir(path: string): void;
  mkdir(path: string): void;
  rmdir(path: string): void;
  unlink(path: string): void;
  /** unlink that is quiet when the file is already gone. */
  unlinkIfExists(path: string): void;
  rename(from: string, to: string): void;
  /** Sets the stick's own mtime. Never follows links. */
  setMtime(path: string, sec: number, nsec: number): void;
  statfs(): fs.StatsFs;
  /** Reads a whole small file; null if it is larger than `max` bytes. */
  readSmall(path: string, max: number): Buffer | null;
  /** Creates a new file with the given content (O_EXCL) and, if asked, fsyncs it. */
  writeNew(path: string, data: Buffer, sync: boolean): void;
  /** Appends to an existing file and, if asked, fsyncs it. */
  append(path: string, data: Buffer, sync: boolean): void;
  /**
   * Renames between these two calls are made durable together at `endRenames` (a batch of
   * renames written behind). Optional: a lower without them makes each rename durable itself.
   */
  beginRenames?(): void;
  endRenames?(): void;
  /**
   * Makes the removals made so far durable and lets the removed files' space go (vfat: see
   * NodeLower.unlink); with `ifIdleMs`, only if no removal came in that many milliseconds.
   * Optional: a lower without it frees space at the removal itself.
   */
  settleRemoved?(ifIdleMs?: number): void;
  /**
   * Starts reading a folder just listed ahead, off the caller's thread: the named `files` in it
   * first (its logs), then an lstat of each entry, then its subfolders' listings and their
   * files whose names start with `subPrefix` (their logs), so that the calls that follow find
   * them in the kernel's caches. Changes nothing. Optional: a speed-up.
   */
  prefetch?(dir: string, files: string[], subPrefix: string): void;
}

/** statfs f_type of Linux's FAT driver (vfat, msdos). */
const MSDOS_SUPER_MAGIC = 0x4d44;
/** statfs f_type of a FUSE filesystem (exfat-fuse on a host without the exfat driver) */
const FUSE_SUPER_MAGIC = 0x65735546;

/** at most this many removed files and folders held open on vfat (see NodeLower.unlink) */
const MAX_HELD_REMOVED = 256;
/** descriptors opened at once to be fsync'd together */
const SYNC_CHUNK = 256;

const dirOf = (p: string): string => p.slice(0, Math.max(p.lastIndexOf("/"), 0)) || "/";

const openFolder = (path: string): number => fs.openSync(b(path), C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW);

/** fsync descriptors: one plainly, several at once (see native/fsync_many.c) */
function syncAll(fds: readonly number[]): void {
  if (fds.length === 1) fs.fsyncSync(fds[0]!);
  else if (fds.length > 1) fsyncAll(fds);
}

/**
 * Opens each path (`open` skips one by giving undefined), fsyncs them all at once and closes
 * them, a bounded number of descriptors at a time.
 */
function syncPaths(paths: readonly string[], open: (path: string) => number | undefined): void {
  for (let i = 0; i < paths.length; i += SYNC_CHUNK) {
    const fds: number[] = [];
    try {
      for (const p of paths.slice(i, i + SYNC_CHUNK)) {
        const fd = open(p);
        if (fd !== undefined) fds.push(fd);
      }
      syncAll(fds);
    } finally {
      for (const fd of fds) fs.closeSync(fd);
    }
  }
}

/** The real stick: synchronous node:fs calls. */
export class NodeLower implements Lower {
  /** The stick is under the kernel's vfat driver: renames need care (see rename). */
  private readonly vfat: boolean;
  /** the stick's cluster size (statfs f_bsize on vfat), 0 if unknown */
  private readonly clusterSize: number;
  /** closes go to the addon's closer threads (see closeWritten) */
  private readonly closeOnThread: boolean;

  constructor(readonly root: string) {
    let type = 0;
    let bsize = 0;
    try {
      const st = fs.statfsSync(b(root));
      type = Number(st.type);
      bsize = Number(st.bsize);
    } catch {
      /* checked by whoever mounts; any later call reports the problem */
    }
    this.vfat = type === MSDOS_SUPER_MAGIC;
    this.closeOnThread = this.vfat || type === FUSE_SUPER_MAGIC;
    this.clusterSize = bsize;
  }

  /** lstat, or null when the entry does not exist. */
  stat(path: string): StoredFacts | null {
    try {
      return factsOf(fs.lstatSync(b(path), { bigint: true }));
    } catch (err) {
      if (hasCode(err, "ENOENT") || hasCode(err, "ENOTDIR")) return null;
      throw err;
    }
  }

  fstat(fd: number): StoredFacts {
    return factsOf(fs.fstatSync(fd, { bigint: true }));
  }

  list(dir: string): LowerEntry[] {
    return fs
      .readdirSync(b(dir), { encoding: "buffer", withFileTypes: true })
      .map((d) => ({ name: (d.name as unknown as Buffer).toString("latin1"), isDir: d.isDirectory() }));
  }

  /**
   * Opens a stored regular file. O_NONBLOCK keeps a fifo planted on a stick from blocking the
   * daemon (it changes nothing for regular files); anything but a regular file is refused.
   */
  open(path: string, flags: number, mode = 0o644): number {
    return this.openFacts(path, flags, mode).fd;
  }

  /** open(), also giving the facts of the file just opened (from the same fstat). */
  openFacts(path: string, flags: number, mode = 0o644): { fd: number; facts: StoredFacts } {
    // on vfat a truncation must be written at once (see ftruncate): open, then ftruncate
    const trunc = this.vfat && (flags & C.O_TRUNC) !== 0 && (flags & 3) /* O_ACCMODE */ !== C.O_RDONLY;
    if (trunc) flags &= ~C.O_TRUNC;
    const fd = this.roomy(() => fs.openSync(b(path), flags | C.O_NOFOLLOW | C.O_NONBLOCK, mode));
    let st: fs.BigIntStats;
    try {
      st = fs.fstatSync(fd, { bigint: true });
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    if (!st.isFile()) {
      fs.closeSync(fd);
      throw Object.assign(new Error(`not a regular file: ${path}`), { code: "EACCES" });
    }
    if (trunc) {
      try {
        this.truncateKnown(fd, 0, Number(st.size));
        st = fs.fstatSync(fd, { bigint: true });
      } catch (err) {
        fs.closeSync(fd);
        throw err;
      }
    }
    return { fd, facts: factsOf(st) };
  }

  /** Creates a file that must not exist yet (O_EXCL: the last guard against case collisions). */
  createExclusive(path: string, flags: number): number {
    return this.open(path, flags | C.O_CREAT | C.O_EXCL, 0o644);
  }

  /** createExclusive(), also giving the new file's facts. */
  createExclusiveFacts(path: string, flags: number): { fd: number; facts: StoredFacts } {
    return this.openFacts(path, flags | C.O_CREAT | C.O_EXCL, 0o644);
  }

  close(fd: number): void {
    this.closeWritten(fd);
  }

  /**
   * Closes a descriptor that may have been written through, on vfat and exfat-fuse on a thread
   * of its own (native/closer.c). Mounted with `flush`, as the login hook mounts a FAT32 stick,
   * vfat sleeps 0.1 s in every such close, and the daemon must not stall for it; on exfat-fuse
   * a close is two round trips to that daemon (flush, release): a fifth of a small-file read's
   * time while the layer waited for them (docs/benchmarks.md, "Sixteenth round"). Nothing the
   * layer promises waits for a close: fsync does not need one, and a removed file's clusters,
   * which a close may free, matter only when the stick is full (roomy waits for the closes then).
   */
  private closeWritten(fd: number): void {
    if (this.closeOnThread) closeLater(fd);
    else fs.closeSync(fd);
  }

  /** Waits for every close handed to the closer threads (at unmount; when the stick is full). */
  waitForCloses(): void {
    waitForCloses();
  }

  /** native/prefetch.c; its threads open only folders and regular files, never follow links */
  prefetch(dir: string, files: string[], subPrefix: string): void {
    prefetchFolder(dir, files.join("/"), subPrefix);
  }

  /** Forgets the folders queued for reading ahead and waits for those being read (unmount). */
  stopPrefetching(): void {
    prefetchWait();
  }

  read(fd: number, buf: Buffer, length: number, position: number): number {
    return fs.readSync(fd, buf, 0, length, position);
  }

  write(fd: number, data: Buffer, position: number | null): number {
    return this.roomy(() => fs.writeSync(fd, data, 0, data.length, position));
  }

  fsync(fd: number): void {
    this.settleRemoved();
    fs.fsyncSync(fd);
  }

  fdatasync(fd: number): void {
    this.settleRemoved();
    fs.fdatasyncSync(fd);
  }

  ftruncate(fd: number, size: number): void {
    if (!this.vfat) {
      fs.ftruncateSync(fd, size);
      return;
    }
    this.truncateKnown(fd, size, Number(fs.fstatSync(fd, { bigint: true }).size));
  }

  /**
   * vfat frees the clusters a truncation cuts off in the FAT at once (and the next fsync of
   * anything writes that FAT), but writes the file's new size and start cluster into its entry
   * only when the inode is written back: until then the stick's entry still claims the freed
   * clusters, and a file that takes them and is fsync'd ends up sharing them with it after a
   * pull (fsck.fat then truncates one of the two). So a truncation that frees clusters is
   * fsync'd at once (the entry goes to the stick before the FAT). Nothing else can allocate in
   * between: the layer is the stick's only writer, one call at a time.
   */
  private truncateKnown(fd: number, size: number, before: number): void {
    this.roomy(() => fs.ftruncateSync(fd, size));
    const cs = this.clusterSize || 1;
    if (Math.ceil(size / cs) < Math.ceil(before / cs)) fs.fsyncSync(fd);
  }

  /**
   * fsync a directory, so that new and removed entries in it are on the stick. On vfat its
   * parent too: Linux's vfat files the sectors of a new folder's first cluster under the
   * *parent* folder (fat_alloc_new_dir marks them dirty for the parent's inode), and there
   * they stay until the parent is fsync'd. Until then an entry added to or removed from that
   * cluster is written by an fsync of the parent, not of the folder itself (measured in the
   * micro-VM on Debian's 6.1: `mkdir u`, a file in it synced, `sync`; unlink the file, fsync
   * `u`, pull: the file is still on the stick; with an fsync of the parent, or a syncfs, it is
   * gone). A folder moved elsewhere takes no such sectors along: its rename fsyncs the folder
   * it left.
   */
  fsyncDir(path: string): void {
    this.settleRemoved();
    this.syncFolders([path]);
  }

  /**
   * fsyncs the folders, on vfat with their parents (see fsyncDir), all at once: none of them
   * has to reach the stick before another, only all before the caller goes on.
   */
  private syncFolders(paths: Iterable<string>): void {
    const folders = new Set(paths);
    const parents = this.vfat ? [...new Set([...folders].map(dirOf))].filter((p) => !folders.has(p)) : [];
    syncPaths([...folders, ...parents], (p) => (folders.has(p) ? openFolder(p) : this.openParentIfThere(p)));
  }

  /**
   * A parent folder to fsync: quiet when it is gone (removed meanwhile: nothing leads into it
   * then); when it may not be opened (the home's own parent, outside it, in a folder the
   * daemon cannot read), said once and skipped rather than failing the fsync asked for.
   */
  private openParentIfThere(path: string): number | undefined {
    try {
      return openFolder(path);
    } catch (err) {
      if (hasCode(err, "ENOENT")) return undefined;
      if (!hasCode(err, "EACCES") && !hasCode(err, "EPERM")) throw err;
      warnOnce(
        `parent-sync:${path}`,
        `cannot open ${showPath(path)} to write it (${String(err)}): on vfat, removals and names in a folder made under it since the mount may reach the stick later than promised`,
      );
      return undefined;
    }
  }

  mkdir(path: string): void {
    this.roomy(() => fs.mkdirSync(b(path), 0o755));
  }

  rmdir(path: string): void {
    this.removeHolding(path, () => fs.rmdirSync(b(path)));
    // Its own removed entries need not reach the stick: once its parent is written (the same
    // settle) nothing on the stick leads into it, and its clusters stay held until then. So
    // `rm -r` writes each folder's parent, not each folder (a sync write fewer per folder),
    // and a folder made again under the same path gets a descriptor of its own.
    const own = this.removed.dirs.get(path);
    if (own !== undefined) {
      this.removed.dirs.delete(path);
      fs.closeSync(own);
    }
  }

  /**
   * On vfat a removal holds the removed file open until its folder is on the stick. Linux's vfat
   * takes the entry out only in the folder's buffer (written when the folder is written back or
   * fsync'd), but frees the file's clusters in the FAT as soon as the inode goes, and any fsync
   * writes the FAT: a file written and fsync'd next could take those clusters while the stick
   * still holds the old entry pointing at them, and after a pull fsck.fat truncates one of the
   * two (found by the FAT32 torture: a synced file lost its content to a metadata log's old
   * slot). An open file keeps its clusters; `settleRemoved` fsyncs the folders, then lets go.
   */
  unlink(path: string): void {
    this.removeHolding(path, () => fs.unlinkSync(b(path)));
  }

  /** unlink that is quiet when the file is already gone. */
  unlinkIfExists(path: string): void {
    this.removeHolding(path, () => {
      try {
        fs.unlinkSync(b(path));
      } catch (err) {
        if (!hasCode(err, "ENOENT")) throw err;
      }
    });
  }

  /** vfat removals not yet settled: the removed files held open, and their folders by path */
  private removed: { held: number[]; dirs: Map<string, number> } = { held: [], dirs: new Map() };
  /** when the last removal was held (Date.now()) */
  private lastRemoved = 0;

  private removeHolding(path: string, remove: () => void): void {
    if (!this.vfat) {
      remove();
      return;
    }
    if (this.removed.held.length >= MAX_HELD_REMOVED) this.settleRemoved();
    let held: number | undefined;
    try {
      held = this.openQuiet(path);
      if (held === undefined) {
        remove(); // nothing there (unlink says so; unlinkIfExists is quiet)
        return;
      }
    } catch {
      // cannot be held open: removed and made durable at once instead
      remove();
      this.fsyncDir(dirOf(path));
      return;
    }
    try {
      remove();
    } catch (err) {
      fs.closeSync(held);
      throw err;
    }
    this.removed.held.push(held);
    this.lastRemoved = Date.now();
    const dir = dirOf(path);
    if (!this.removed.dirs.has(dir)) {
      // the folder held too: its fsync still works if it is itself removed or renamed meanwhile
      try {
        this.removed.dirs.set(dir, fs.openSync(b(dir), C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW));
      } catch (err) {
        this.settleRemoved();
        throw err;
      }
    }
  }

  /**
   * The removals' folders fsync'd (every one before any file goes; a removed folder's own
   * entries not: see rmdir), then the removed files closed: their clusters are freed now
   * that no entry on the stick points at them. Called by every fsync, unmount, the layer's
   * 2-second flush once removals pause (not in the middle of an `rm -r`: each settle writes
   * the FAT and every folder), at more than MAX_HELD_REMOVED, and when the stick is full.
   */
  settleRemoved(ifIdleMs = 0): void {
    const r = this.removed;
    if (r.held.length === 0 && r.dirs.size === 0) return;
    if (ifIdleMs > 0 && Date.now() - this.lastRemoved < ifIdleMs) return;
    this.removed = { held: [], dirs: new Map() };
    try {
      // the folders (held open: they may have been removed or renamed since), and their
      // parents (see fsyncDir), those not among them already
      syncAll([...r.dirs.values()]);
      const parents = [...new Set([...r.dirs.keys()].map(dirOf))].filter((p) => !r.dirs.has(p));
      syncPaths(parents, (p) => this.openParentIfThere(p));
    } finally {
      // also when an fsync failed: the stick is failing, and holding on would leak descriptors
      for (const fd of r.held) fs.closeSync(fd);
      for (const fd of r.dirs.values()) fs.closeSync(fd);
    }
  }

  /**
   * Runs a call that may need space; when the stick is full, frees what removals hold (and
   * what closes not yet done hold: a removed file's clusters go at its last close) and retries.
   */
  private roomy<T>(call: () => T): T {
    try {
      return call();
    } catch (err) {
      if (!hasCode(err, "ENOSPC") || (this.removed.held.length === 0 && closesPending() === 0)) throw err;
      this.settleRemoved();
      try {
        waitForCloses();
      } catch (e) {
        log("warn", `closing a file on the stick failed: ${String(e)}`);
      }
      return call();
    }
  }

  rename(from: string, to: string): void {
    if (!this.vfat) {
      fs.renameSync(b(from), b(to));
      return;
    }
    // Linux's vfat gives the moved file the target's directory entry (or a new, empty one) but
    // writes its start cluster and size there only when the moved inode itself is written back,
    // seconds later; fsync of the folder does not do it. Meanwhile the replaced file's clusters
    // are freed, and any fsync writes the FAT: a pull then leaves the name pointing at free
    // clusters, neither the old content nor the new (found by the FAT32 torture). So: keep the
    // replaced file open (its clusters stay allocated), rename, write the moved entry (fsync of
    // the moved file), then the rest of both folders (the new long name, the old entry's
    // removal), and only then let the replaced file go. Each step leaves a state fsck.fat
    // repairs without losing the old content or the new.
    if (this.batch) {
      this.renameInBatch(this.batch, from, to);
      return;
    }
    const held = this.openQuiet(to);
    try {
      fs.renameSync(b(from), b(to));
      const moved = fs.openSync(b(to), C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
      try {
        fs.fsyncSync(moved);
      } finally {
        fs.closeSync(moved);
      }
      this.settleRemoved();
      this.syncFolders(new Set([dirOf(to), dirOf(from)]));
    } finally {
      if (held !== undefined) fs.closeSync(held);
    }
  }

  /** vfat renames since beginRenames: the replaced entries held open, what to fsync at the end */
  private batch: { held: number[]; moved: Set<string>; dirs: Set<string> } | null = null;

  beginRenames(): void {
    if (this.vfat && !this.batch) this.batch = { held: [], moved: new Set(), dirs: new Set() };
  }

  /**
   * The batch's share of rename()'s care on vfat, once for all: the moved files' entries (an
   * fsync of each), then each folder once, and only then are the replaced files let go.
   */
  endRenames(): void {
    const bt = this.batch;
    if (!bt) return;
    this.batch = null;
    try {
      // the moved entries, several at once (vfat writes the entries that share a sector in
      // one write then: native/fsync_many.c), a bounded number of descriptors at a time
      // (a moved file is gone when a later rename of the batch moved it on)
      syncPaths([...bt.moved], (p) => this.openQuiet(p));
      this.settleRemoved();
      this.syncFolders(bt.dirs);
    } finally {
      for (const fd of bt.held) fs.closeSync(fd);
    }
  }

  private renameInBatch(bt: NonNullable<NodeLower["batch"]>, from: string, to: string): void {
    // bounded: each replaced file holds a descriptor until the batch ends
    if (bt.held.length >= 256) {
      this.endRenames();
      this.beginRenames();
      this.renameInBatch(this.batch!, from, to);
      return;
    }
    const held = this.openQuiet(to);
    if (held !== undefined) bt.held.push(held);
    fs.renameSync(b(from), b(to));
    bt.moved.delete(from);
    bt.moved.add(to);
    bt.dirs.add(dirOf(to));
    bt.dirs.add(dirOf(from));
  }

  /** An fd on an existing entry (file or folder), or undefined if there is none. */
  private openQuiet(path: string): number | undefined {
    try {
      return fs.openSync(b(path), C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
    } catch (err) {
      if (hasCode(err, "ENOENT")) return undefined;
      throw err;
    }
  }

  /** Sets the stick's own mtime, so other systems show a sensible time. Never follows links. */
  setMtime(path: string, sec: number, nsec: number): void {
    const t = sec + nsec / 1e9;
    fs.lutimesSync(b(path), t, t);
  }

  statfs(): fs.StatsFs {
    return fs.statfsSync(b(this.root));
  }

  /** Reads a whole small file; null if it is larger than `max` bytes. */
  readSmall(path: string, max: number): Buffer | null {
    const fd = this.open(path, C.O_RDONLY);
    try {
      const size = Number(fs.fstatSync(fd, { bigint: true }).size);
      if (size > max) return null;
      const buf = Buffer.alloc(size);
      let got = 0;
      while (got < size) {
        const n = fs.readSync(fd, buf, got, size - got, got);
        if (n === 0) break;
        got += n;
      }
      return buf.subarray(0, got);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Creates a new file with the given content (O_EXCL) and, if asked, fsyncs it. */
  writeNew(path: string, data: Buffer, sync: boolean): void {
    const fd = this.createExclusive(path, C.O_WRONLY);
    try {
      if (data.length > 0) this.roomy(() => fs.writeSync(fd, data, 0, data.length, 0));
      if (sync) fs.fsyncSync(fd);
    } finally {
      this.closeWritten(fd);
    }
  }

  /**
   * Appends to an existing file and, if asked, fsyncs it. Only ever a metadata log the layer
   * read (as a regular file) or wrote itself in this mount, so no fstat check after the open:
   * O_NOFOLLOW and O_NONBLOCK still hold, and on exfat-fuse the fstat was one more round trip.
   */
  append(path: string, data: Buffer, sync: boolean): void {
    const fd = fs.openSync(b(path), C.O_WRONLY | C.O_APPEND | C.O_NOFOLLOW | C.O_NONBLOCK);
    try {
      let done = 0;
      while (done < data.length)
        done += this.roomy(() => fs.writeSync(fd, data, done, data.length - done, null));
      if (sync) fs.fsyncSync(fd);
    } finally {
      this.closeWritten(fd);
    }
  }
}
