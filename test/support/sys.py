"""System calls Node lacks, for the test suite (test/support/sys.ts drives this).

Reads a JSON list of operations on stdin, runs them in order, prints a JSON list of results.
Each operation is [name, arg...]; a path or a byte string is either a JSON string (UTF-8) or
{"b64": "..."} (any bytes). Each result is {"ok": true, "v": value} or
{"ok": false, "errno": "ENOENT", "msg": "..."}. An operation failing does not stop the batch.
"""
import base64
import ctypes
import errno
import json
import mmap
import os
import socket
import sys

libc = ctypes.CDLL(None, use_errno=True)
SYS_renameat2 = 316  # x86_64
AT_FDCWD = -100


def b(v):
    if isinstance(v, dict):
        return base64.b64decode(v["b64"])
    if isinstance(v, str):
        return v.encode("utf-8", "surrogateescape")
    raise TypeError("want str or {b64}: %r" % (v,))


def enc(data):
    return {"b64": base64.b64encode(data).decode("ascii")}


def st(s):
    return {
        "mode": s.st_mode,
        "ino": s.st_ino,
        "dev": s.st_dev,
        "nlink": s.st_nlink,
        "uid": s.st_uid,
        "gid": s.st_gid,
        "size": s.st_size,
        "blocks": s.st_blocks,
        "rdev": s.st_rdev,
        "atime_ns": str(s.st_atime_ns),
        "mtime_ns": str(s.st_mtime_ns),
        "ctime_ns": str(s.st_ctime_ns),
    }


def op_stat(p):
    return st(os.stat(b(p)))


def op_lstat(p):
    return st(os.lstat(b(p)))


def op_utime(p, atime_ns, mtime_ns, follow=True):
    os.utime(b(p), ns=(int(atime_ns), int(mtime_ns)), follow_symlinks=follow)


def op_mkfifo(p, mode):
    os.mkfifo(b(p), mode)


def op_mknod(p, mode, major=0, minor=0):
    os.mknod(b(p), mode, os.makedev(major, minor))


def op_bind_socket(p):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(b(p))
    s.close()


def op_setxattr(p, name, value, flags=0, follow=True):
    os.setxattr(b(p), b(name), b(value), flags, follow_symlinks=follow)


def op_getxattr(p, name, follow=True):
    return enc(os.getxattr(b(p), b(name), follow_symlinks=follow))


def op_listxattr(p, follow=True):
    return sorted(os.listxattr(b(p), follow_symlinks=follow))


def op_removexattr(p, name, follow=True):
    os.removexattr(b(p), b(name), follow_symlinks=follow)


def op_listdir(p):
    return sorted((enc(n) for n in os.listdir(b(p))), key=lambda e: e["b64"])


def op_write(p, data, mode=0o644):
    fd = os.open(b(p), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, b(data))
    finally:
        os.close(fd)


def op_read(p):
    with open(b(p), "rb") as f:
        return enc(f.read())


def op_readlink(p):
    return enc(os.readlink(b(p)))


def op_symlink(target, p):
    os.symlink(b(target), b(p))


def op_link(src, dst):
    os.link(b(src), b(dst))


def op_rename(src, dst):
    os.rename(b(src), b(dst))


def op_renameat2(src, dst, flags):
    r = libc.syscall(SYS_renameat2, AT_FDCWD, b(src), AT_FDCWD, b(dst), flags)
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def op_unlink(p):
    os.unlink(b(p))


def op_mkdir(p, mode=0o777):
    os.mkdir(b(p), mode)


def op_rmdir(p):
    os.rmdir(b(p))


def op_chmod(p, mode):
    os.chmod(b(p), mode)


def op_chown(p, uid, gid, follow=True):
    os.chown(b(p), uid, gid, follow_symlinks=follow)


def op_truncate(p, size):
    os.truncate(b(p), size)


def op_statvfs(p):
    s = os.statvfs(b(p))
    return {k: getattr(s, k) for k in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
                                       "f_files", "f_ffree", "f_favail", "f_namemax", "f_flag")}


def op_fallocate(p, mode, offset, length):
    fd = os.open(b(p), os.O_RDWR)
    try:
        if mode == 0:
            os.posix_fallocate(fd, offset, length)
        else:
            r = libc.fallocate(fd, ctypes.c_int(mode), ctypes.c_long(offset), ctypes.c_long(length))
            if r != 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))
    finally:
        os.close(fd)


def op_mmap_write(p, offset, data):
    """Writes through a shared mapping of the whole file, msyncs, unmaps."""
    fd = os.open(b(p), os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        d = b(data)
        m[offset:offset + len(d)] = d
        m.flush()
        m.close()
    finally:
        os.close(fd)


def op_mmap_read(p):
    fd = os.open(b(p), os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return enc(b"")
        m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
        data = bytes(m[:])
        m.close()
        return enc(data)
    finally:
        os.close(fd)


def op_fsync(p):
    # a file or a folder: opened read-only, as fsync(1) does
    fd = os.open(b(p), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def op_exists(p):
    return os.path.lexists(b(p))


def op_access(p, mode):
    return os.access(b(p), mode)


OPS = {k[3:]: v for k, v in globals().items() if k.startswith("op_")}


def main():
    ops = json.load(sys.stdin)
    out = []
    for o in ops:
        name, args = o[0], o[1:]
        try:
            out.append({"ok": True, "v": OPS[name](*args)})
        except OSError as e:
            out.append({"ok": False, "errno": errno.errorcode.get(e.errno, str(e.errno)), "msg": str(e)})
    json.dump(out, sys.stdout)


main()
