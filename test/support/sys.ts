// The system calls Node lacks (mkfifo, mknod, xattrs, utime with nanoseconds, renameat2,
// fallocate, mmap, bytes names), run by python3 in a child process (test/support/sys.py).
//
// Everything that touches a mount goes through a child process or an async fs call: a sync call
// into a hung FUSE daemon would block the test worker beyond any timeout.

import { fileURLToPath } from "node:url";
import { PYTHON, run, type Cred, describeFailure } from "./run.js";

const SYS_PY = fileURLToPath(new URL("./sys.py", import.meta.url));

/** A path or byte string for sys.py: text, or raw bytes. */
export type Bytes = string | Buffer;

type Arg = Bytes | number | boolean | null;

export interface PyStat {
  mode: number;
  ino: number;
  dev: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  blocks: number;
  rdev: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

export type SysResult = { ok: true; v: unknown } | { ok: false; errno: string; msg: string };

function wire(a: Arg): unknown {
  return Buffer.isBuffer(a) ? { b64: a.toString("base64") } : a;
}

/** Runs a batch of operations in one python process; results in order. */
export async function sysBatch(ops: [string, ...Arg[]][], as?: Cred): Promise<SysResult[]> {
  const input = JSON.stringify(ops.map(([name, ...args]) => [name, ...args.map(wire)]));
  const r = await run(PYTHON, [SYS_PY], { input, timeoutMs: 60_000, ...(as ? { as } : {}) });
  if (r.code !== 0) throw new Error(`sys.py failed:\n${describeFailure(r)}`);
  return JSON.parse(r.stdout) as SysResult[];
}

/** One operation; resolves to its value, rejects with an Error whose `code` is the errno name. */
export async function sys(name: string, ...args: Arg[]): Promise<unknown> {
  return sysAs(undefined, name, ...args);
}

export async function sysAs(as: Cred | undefined, name: string, ...args: Arg[]): Promise<unknown> {
  const [res] = await sysBatch([[name, ...args]], as);
  if (!res) throw new Error("sys.py returned nothing");
  if (!res.ok)
    throw Object.assign(new Error(`${name}(${args.map(String).join(", ")}): ${res.msg}`), {
      code: res.errno,
    });
  return res.v;
}

/** The errno name an operation fails with, or "OK". */
export async function errnoOf(name: string, ...args: Arg[]): Promise<string> {
  return errnoOfAs(undefined, name, ...args);
}

export async function errnoOfAs(as: Cred | undefined, name: string, ...args: Arg[]): Promise<string> {
  const [res] = await sysBatch([[name, ...args]], as);
  if (!res) throw new Error("sys.py returned nothing");
  return res.ok ? "OK" : res.errno;
}

function toStat(v: unknown): PyStat {
  const o = v as Record<string, number | string>;
  return {
    mode: o.mode as number,
    ino: o.ino as number,
    dev: o.dev as number,
    nlink: o.nlink as number,
    uid: o.uid as number,
    gid: o.gid as number,
    size: o.size as number,
    blocks: o.blocks as number,
    rdev: o.rdev as number,
    atimeNs: BigInt(o.atime_ns as string),
    mtimeNs: BigInt(o.mtime_ns as string),
    ctimeNs: BigInt(o.ctime_ns as string),
  };
}

export async function pyStat(p: Bytes): Promise<PyStat> {
  return toStat(await sys("stat", p));
}

export async function pyLstat(p: Bytes): Promise<PyStat> {
  return toStat(await sys("lstat", p));
}

export function fromB64(v: unknown): Buffer {
  return Buffer.from((v as { b64: string }).b64, "base64");
}

export async function pyReadlink(p: Bytes): Promise<Buffer> {
  return fromB64(await sys("readlink", p));
}

export async function pyRead(p: Bytes): Promise<Buffer> {
  return fromB64(await sys("read", p));
}

/** Directory entries as raw bytes, sorted. */
export async function pyListdir(p: Bytes): Promise<Buffer[]> {
  return ((await sys("listdir", p)) as unknown[]).map(fromB64);
}

export async function pyGetxattr(p: Bytes, name: string): Promise<Buffer> {
  return fromB64(await sys("getxattr", p, name));
}

export async function pyListxattr(p: Bytes): Promise<string[]> {
  return (await sys("listxattr", p)) as string[];
}

export async function utimeNs(p: Bytes, atimeNs: bigint, mtimeNs: bigint, follow = true): Promise<void> {
  await sys("utime", p, atimeNs.toString(), mtimeNs.toString(), follow);
}

export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;

export const FALLOC_FL_KEEP_SIZE = 1;
export const FALLOC_FL_PUNCH_HOLE = 2;

/** File type bits */
export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFIFO = 0o010000;
export const S_IFSOCK = 0o140000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

export function fileType(mode: number): string {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "file";
    case S_IFDIR:
      return "dir";
    case S_IFLNK:
      return "symlink";
    case S_IFIFO:
      return "fifo";
    case S_IFSOCK:
      return "socket";
    case S_IFCHR:
      return "chardev";
    case S_IFBLK:
      return "blockdev";
    default:
      return `unknown(${(mode & S_IFMT).toString(8)})`;
  }
}

/** "0644"-style permission bits, for readable expectations. */
export function perms(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}
