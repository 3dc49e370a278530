/**
 * Wires the layer's operations to the kernel: looks up inodes and handles, runs the
 * operation, and answers. Any error with an errno goes back to the caller as that errno;
 * anything else is a bug, logged with its stack and answered with EIO (the daemon stays up).
 */
import type { FuseAddon, FuseReq, LowLevelOps } from "../native/types.js";
import { log } from "../log.js";
import { E, errnoOf, fail } from "./errors.js";
import type { DirHandle, FileHandle } from "./handles.js";
import { Handles } from "./handles.js";
import type { Inode } from "./inode.js";
import type { Layer } from "./layer.js";
import * as dirs from "./ops/dirs.js";
import * as entries from "./ops/entries.js";
import * as files from "./ops/files.js";
import * as links from "./ops/links.js";
import * as xattrs from "./ops/xattrs.js";

export interface Filesystem {
  ops: LowLevelOps;
  /** open file handles, to settle at unmount */
  files: Handles<FileHandle>;
}

export function makeFilesystem(L: Layer, fuse: FuseAddon): Filesystem {
  const fileHandles = new Handles<FileHandle>();
  const dirHandles = new Handles<DirHandle>();

  const inode = (ino: number): Inode => L.inodes.get(ino) ?? fail(E.ESTALE);
  const fileOf = (fh: number): FileHandle => fileHandles.get(fh) ?? fail(E.EBADF);
  const dirOf = (fh: number): DirHandle => dirHandles.get(fh) ?? fail(E.EBADF);

  /** Runs one operation; answers the errno if it throws. */
  function run(req: FuseReq, what: string, body: () => void): void {
    try {
      links.beforeRequest(L, what);
      L.trimMetas();
      body();
    } catch (err) {
      let errno = errnoOf(err);
      if (errno === undefined) {
        log("error", `${what} failed unexpectedly: ${(err as Error)?.stack ?? String(err)}`);
        errno = E.EIO;
      }
      fuse.replyErr(req, errno);
    }
  }
  const ok = (req: FuseReq): void => fuse.replyErr(req, 0);

  const ops: LowLevelOps = {
    lookup: (req, parent, n) =>
      run(req, "lookup", () => fuse.replyEntry(req, entries.lookup(L, inode(parent), n))),
    forget: (ino, n) => {
      const i = L.inodes.get(ino);
      if (i) entries.forget(L, i, n);
    },
    getattr: (req, ino) =>
      run(req, "getattr", () => fuse.replyAttr(req, files.getattr(L, inode(ino)), L.opts.attrTimeout)),
    setattr: (req, ino, attr, valid, fh) =>
      run(req, "setattr", () =>
        fuse.replyAttr(
          req,
          files.setattr(L, inode(ino), attr, valid, fh === undefined ? undefined : fileHandles.get(fh)),
          L.opts.attrTimeout,
        ),
      ),
    readlink: (req, ino) =>
      run(req, "readlink", () => fuse.replyReadlink(req, entries.readlink(L, inode(ino)))),
    mknod: (req, parent, n, mode) =>
      run(req, "mknod", () => fuse.replyEntry(req, entries.mknod(L, inode(parent), n, mode))),
    mkdir: (req, parent, n, mode) =>
      run(req, "mkdir", () => fuse.replyEntry(req, entries.mkdir(L, inode(parent), n, mode))),
    unlink: (req, parent, n) => run(req, "unlink", () => (entries.unlink(L, inode(parent), n), ok(req))),
    rmdir: (req, parent, n) => run(req, "rmdir", () => (entries.rmdir(L, inode(parent), n), ok(req))),
    symlink: (req, target, parent, n) =>
      run(req, "symlink", () => fuse.replyEntry(req, entries.symlink(L, inode(parent), n, target))),
    rename: (req, parent, n, newParent, newName, flags) =>
      run(req, "rename", () => {
        entries.rename(L, inode(parent), n, inode(newParent), newName, flags);
        ok(req);
      }),
    link: (req, ino, newParent, newName) =>
      run(req, "link", () => fuse.replyEntry(req, links.link(L, inode(ino), inode(newParent), newName))),
    open: (req, ino, fi) =>
      run(req, "open", () => {
        const h = files.open(L, inode(ino), fi.flags);
        fuse.replyOpen(req, { fh: fileHandles.add(h), keepCache: true });
      }),
    create: (req, parent, n, mode, fi) =>
      run(req, "create", () => {
        const { entry, h } = files.create(L, inode(parent), n, mode, fi.flags);
        fuse.replyCreate(req, entry, { fh: fileHandles.add(h), keepCache: true });
      }),
    read: (req, _ino, size, off, fi) =>
      run(req, "read", () => {
        fuse.replyDataFd(req, files.readableFd(fileOf(fi.fh)), size, off);
      }),
    write: (req, _ino, data, off, fi) =>
      run(req, "write", () => fuse.replyWrite(req, files.write(L, fileOf(fi.fh), data, off))),
    release: (req, _ino, fi) =>
      run(req, "release", () => {
        const h = fileHandles.delete(fi.fh);
        if (h) files.release(L, h);
        ok(req);
      }),
    fsync: (req, _ino, datasync, fi) =>
      run(req, "fsync", () => (files.fsync(L, fileOf(fi.fh), datasync), ok(req))),
    fallocate: (req, _ino, mode, off, length, fi) =>
      run(req, "fallocate", () => (files.fallocate(L, fileOf(fi.fh), mode, off, length), ok(req))),
    opendir: (req, ino) =>
      run(req, "opendir", () => fuse.replyOpen(req, { fh: dirHandles.add(dirs.opendir(L, inode(ino))) })),
    readdir: (req, _ino, size, off, fi) =>
      run(req, "readdir", () => {
        fuse.replyDirents(req, size, dirs.readdir(L, dirOf(fi.fh), size, off));
      }),
    readdirplus: (req, _ino, size, off, fi) =>
      run(req, "readdirplus", () => {
        const list = dirs.readdirplus(L, dirOf(fi.fh), size, off);
        const packed = fuse.replyDirentsPlus(req, size, list);
        // each packed entry with an inode is a lookup the kernel will forget later
        for (let i = 0; i < packed; i++) {
          const ino = list[i]!.entry.ino;
          if (ino !== 0) inode(ino).nlookup++;
        }
      }),
    releasedir: (req, _ino, fi) => {
      dirHandles.delete(fi.fh);
      ok(req);
    },
    fsyncdir: (req, ino) => run(req, "fsyncdir", () => (dirs.fsyncdir(L, inode(ino)), ok(req))),
    statfs: (req) => run(req, "statfs", () => fuse.replyStatfs(req, dirs.statfs(L))),
    setxattr: (req, ino, n, value, flags) =>
      run(
        req,
        "setxattr",
        () => (xattrs.setxattr(L, inode(ino), n.toString("latin1"), value, flags), ok(req)),
      ),
    getxattr: (req, ino, n, size) => {
      // the addon answers other names itself (init xattrPrefix); this is for other callers
      if (!xattrs.isUserName(n)) return fuse.replyErr(req, E.ENODATA);
      run(req, "getxattr", () =>
        replyXattrData(req, xattrs.getxattr(L, inode(ino), n.toString("latin1")), size),
      );
    },
    listxattr: (req, ino, size) =>
      run(req, "listxattr", () => replyXattrData(req, xattrs.listxattr(L, inode(ino)), size)),
    removexattr: (req, ino, n) =>
      run(req, "removexattr", () => (xattrs.removexattr(L, inode(ino), n.toString("latin1")), ok(req))),
  };

  /** size 0 asks how big the value is; a smaller buffer than the value is ERANGE. */
  function replyXattrData(req: FuseReq, data: Buffer, size: number): void {
    if (size === 0) fuse.replyXattr(req, data.length);
    else if (data.length > size) fuse.replyErr(req, E.ERANGE);
    else fuse.replyBuf(req, data);
  }

  return { ops, files: fileHandles };
}
