/**
 * The typed face of the libfuse3 low-level addon (fuse_ll.c). It mirrors
 * fuse_lowlevel.h: every operation gets a request handle and must answer it exactly
 * once with one of the reply functions (synchronously or later). Names arrive as raw
 * bytes (Buffers): Linux names need not be UTF-8.
 *
 * The C side only moves bytes between /dev/fuse and JavaScript; every decision lives in
 * TypeScript (src/fs/).
 */

/** One in-flight kernel request. Opaque; answer it once with a reply* function. */
export interface FuseReq {
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;
  readonly umask: number;
}

/** struct stat, with nanosecond timestamps split into seconds and nanoseconds. */
export interface Attr {
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  blocks: number;
  blksize: number;
  atimeSec: number;
  atimeNsec: number;
  mtimeSec: number;
  mtimeNsec: number;
  ctimeSec: number;
  ctimeNsec: number;
}

/** struct fuse_entry_param */
export interface EntryParam {
  ino: number;
  generation: number;
  attr: Attr;
  /** seconds the kernel may cache the attributes / the name->inode mapping */
  attrTimeout: number;
  entryTimeout: number;
}

/** The parts of struct fuse_file_info an answer may set. */
export interface OpenInfo {
  fh: number;
  directIo?: boolean;
  keepCache?: boolean;
  nonseekable?: boolean;
}

/** The parts of struct fuse_file_info a request carries. */
export interface FileInfo {
  fh: number;
  flags: number;
  writepage: boolean;
  lockOwner: bigint;
  flush: boolean;
}

/** Bits of SetattrValid (FUSE_SET_ATTR_*). */
export const SetattrValid = {
  MODE: 1 << 0,
  UID: 1 << 1,
  GID: 1 << 2,
  SIZE: 1 << 3,
  ATIME: 1 << 4,
  MTIME: 1 << 5,
  ATIME_NOW: 1 << 7,
  MTIME_NOW: 1 << 8,
  FORCE: 1 << 9,
  CTIME: 1 << 10,
  KILL_SUID: 1 << 11,
  KILL_SGID: 1 << 12,
  FILE: 1 << 13,
  KILL_PRIV: 1 << 14,
  OPEN: 1 << 15,
  TIMES_SET: 1 << 16,
  TOUCH: 1 << 17,
} as const;

export interface StatfsInfo {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  namemax: number;
}

/** A directory entry for replyDirents; `off` is the offset of the *next* entry. */
export interface Dirent {
  name: Buffer;
  ino: number;
  mode: number;
  off: number;
}

/** A directory entry for replyDirentsPlus (readdirplus). */
export interface DirentPlus {
  name: Buffer;
  entry: EntryParam;
  off: number;
}

/** What the filesystem asks of the connection at INIT. */
export interface InitOptions {
  /** largest write request, bytes (libfuse caps at 1 MiB by default); default 1 MiB */
  maxWrite?: number;
  /** largest read request; default 1 MiB */
  maxRead?: number;
  readdirplus?: boolean;
  writebackCache?: boolean;
  /** let O_TRUNC come to open() (FUSE_CAP_ATOMIC_O_TRUNC); default true */
  atomicOTrunc?: boolean;
  /**
   * Only getxattr of names with this prefix reaches JS; any other name is answered EOPNOTSUPP
   * by the addon, as the VFS answers for a namespace without a handler (the kernel asks for
   * security.capability before every write; after one EOPNOTSUPP `ls -l` stops probing the
   * filesystem for labels and ACLs). Default: all reach JS.
   */
  xattrPrefix?: string;
  /**
   * Microseconds the daemon may poll /dev/fuse, yielding, after it runs dry before it sleeps
   * (an adaptive window, at most this long; fuse_ll.c, "polling before sleeping"). Default 0: off.
   */
  pollMicros?: number;
}

/**
 * Operations the filesystem implements. An absent operation is ENOSYS to the kernel
 * (for lock operations that means the kernel does local locking itself).
 *
 * An entry's name (`name`, `newName`) is a byte string: one char per byte of the name the
 * kernel gave, as `Buffer.toString("latin1")` makes (`Buffer.from(name, "latin1")` gives the
 * bytes back). Symlink targets and xattr names come as Buffers.
 */
export interface LowLevelOps {
  init?(): void;
  destroy?(): void;
  lookup(req: FuseReq, parent: number, name: string): void;
  forget?(ino: number, nlookup: number): void; // no reply
  getattr(req: FuseReq, ino: number, fh: number | undefined): void;
  setattr(req: FuseReq, ino: number, attr: Attr, valid: number, fh: number | undefined): void;
  readlink(req: FuseReq, ino: number): void;
  mknod(req: FuseReq, parent: number, name: string, mode: number, rdev: number): void;
  mkdir(req: FuseReq, parent: number, name: string, mode: number): void;
  unlink(req: FuseReq, parent: number, name: string): void;
  rmdir(req: FuseReq, parent: number, name: string): void;
  symlink(req: FuseReq, target: Buffer, parent: number, name: string): void;
  rename(req: FuseReq, parent: number, name: string, newParent: number, newName: string, flags: number): void;
  link(req: FuseReq, ino: number, newParent: number, newName: string): void;
  open(req: FuseReq, ino: number, fi: FileInfo): void;
  read(req: FuseReq, ino: number, size: number, off: number, fi: FileInfo): void;
  /** `data` is a copy the filesystem may keep. */
  write(req: FuseReq, ino: number, data: Buffer, off: number, fi: FileInfo): void;
  /** absent: the kernel stops sending FLUSH after the first ENOSYS */
  flush?(req: FuseReq, ino: number, fi: FileInfo): void;
  release(req: FuseReq, ino: number, fi: FileInfo): void;
  fsync(req: FuseReq, ino: number, datasync: boolean, fi: FileInfo): void;
  opendir(req: FuseReq, ino: number, fi: FileInfo): void;
  readdir(req: FuseReq, ino: number, size: number, off: number, fi: FileInfo): void;
  readdirplus?(req: FuseReq, ino: number, size: number, off: number, fi: FileInfo): void;
  releasedir(req: FuseReq, ino: number, fi: FileInfo): void;
  fsyncdir(req: FuseReq, ino: number, datasync: boolean, fi: FileInfo): void;
  statfs(req: FuseReq, ino: number): void;
  setxattr(req: FuseReq, ino: number, name: Buffer, value: Buffer, flags: number): void;
  /** size 0 asks for the value's size (answer with replyXattr). */
  getxattr(req: FuseReq, ino: number, name: Buffer, size: number): void;
  listxattr(req: FuseReq, ino: number, size: number): void;
  removexattr(req: FuseReq, ino: number, name: Buffer): void;
  create(req: FuseReq, parent: number, name: string, mode: number, fi: FileInfo): void;
  fallocate?(req: FuseReq, ino: number, mode: number, off: number, length: number, fi: FileInfo): void;
}

export interface MountOptions {
  /** e.g. ["fsname=/media/stick/pershome", "subtype=pershome", "default_permissions", "nosuid", "nodev"] */
  options: string[];
  init?: InitOptions;
  /** print libfuse's debug trace to stderr */
  debug?: boolean;
}

/** The addon's exports. */
export interface FuseAddon {
  /**
   * Mounts and starts serving requests on the Node event loop (libuv polls /dev/fuse).
   * `onExit` runs once when the session ends (unmounted from outside, or unmount()).
   */
  mount(mountpoint: string, ops: LowLevelOps, opts: MountOptions, onExit: (err?: Error) => void): FuseSession;

  replyErr(req: FuseReq, errno: number): void;
  replyNone(req: FuseReq): void;
  replyEntry(req: FuseReq, entry: EntryParam): void;
  replyCreate(req: FuseReq, entry: EntryParam, fi: OpenInfo): void;
  replyAttr(req: FuseReq, attr: Attr, attrTimeout: number): void;
  replyReadlink(req: FuseReq, target: Buffer): void;
  replyOpen(req: FuseReq, fi: OpenInfo): void;
  replyWrite(req: FuseReq, count: number): void;
  /** read/getxattr/listxattr data; `length` bytes of `buf` from 0 (default: all). */
  replyBuf(req: FuseReq, buf: Buffer, length?: number): void;
  /** Answers a read with up to `size` bytes of `fd` at `off`, read (or spliced) by the addon itself. */
  replyDataFd(req: FuseReq, fd: number, size: number, off: number): void;
  replyStatfs(req: FuseReq, st: StatfsInfo): void;
  replyXattr(req: FuseReq, size: number): void;
  /** Packs entries until `size` is full; returns how many were packed. */
  replyDirents(req: FuseReq, size: number, entries: Dirent[]): number;
  /** Same for readdirplus; every packed entry counts as one lookup of entry.ino. */
  replyDirentsPlus(req: FuseReq, size: number, entries: DirentPlus[]): number;

  /** Invalidate the kernel's cache of an inode's data/attributes (fuse_lowlevel_notify_inval_inode). */
  notifyInvalInode(session: FuseSession, ino: number, off: number, len: number): number;
  /** Invalidate a name in a directory (fuse_lowlevel_notify_inval_entry). */
  notifyInvalEntry(session: FuseSession, parent: number, name: Buffer): number;
  /** Requests received so far, by kernel opcode name (including those libfuse answers itself). */
  requestCounts(session: FuseSession): Record<string, number>;
  /** Polling before sleeping (InitOptions.pollMicros) so far: see PollStats. */
  pollStats(session: FuseSession): PollStats;
}

export interface PollStats {
  /** times /dev/fuse ran dry and the daemon polled it before sleeping */
  polls: number;
  /** of those, times a request came while it polled (a sleep and a wake-up saved) */
  caught: number;
  /** time spent polling */
  polledMicros: number;
  /** the adaptive window now (0: a mount used slowly polls no more) */
  windowMicros: number;
  /** times the daemon went to sleep in epoll with /dev/fuse drained (polled or not) */
  sleeps: number;
  /** polls that lost the CPU to another task there, each followed by a pause in polling */
  lost: number;
}

export interface FuseSession {
  /** Unmounts (fuse_session_unmount) and ends the session; onExit follows. */
  unmount(): void;
  readonly mountpoint: string;
}
