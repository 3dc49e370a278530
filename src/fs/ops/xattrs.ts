/** Extended attributes: user.* only, kept in the record (docs/format.md, "x"). */
import { MAX_XATTR_TOTAL, MAX_XATTR_VALUE } from "../../format/records.js";
import { E, fail } from "../errors.js";
import type { Inode } from "../inode.js";
import { now } from "../layer.js";
import type { Layer } from "../layer.js";

const XATTR_CREATE = 1;
const USER = Buffer.from("user.");

export function isUserName(name: Buffer): boolean {
  return name.length > USER.length && name.subarray(0, USER.length).equals(USER);
}
const XATTR_REPLACE = 2;

function current(L: Layer, inode: Inode): Map<string, Buffer> {
  L.describe(inode); // drops a record that no longer applies
  const { meta, name } = L.slotOf(inode);
  return meta.get(name)?.xattrs ?? new Map();
}

/** Only user.* is kept; other namespaces are not supported (EOPNOTSUPP, as the VFS says). */
export function getxattr(L: Layer, inode: Inode, name: string): Buffer {
  if (!name.startsWith("user.")) fail(E.EOPNOTSUPP);
  return current(L, inode).get(name) ?? fail(E.ENODATA);
}

export function listxattr(L: Layer, inode: Inode): Buffer {
  const names = [...current(L, inode).keys()];
  return Buffer.from(names.map((n) => n + "\0").join(""), "latin1");
}

export function setxattr(L: Layer, inode: Inode, name: string, value: Buffer, flags: number): void {
  if (!name.startsWith("user.")) fail(E.EOPNOTSUPP);
  if (name.length > 255) fail(E.ERANGE);
  if (value.length > MAX_XATTR_VALUE) fail(E.E2BIG);
  const xattrs = new Map(current(L, inode));
  if (flags & XATTR_CREATE && xattrs.has(name)) fail(E.EEXIST);
  if (flags & XATTR_REPLACE && !xattrs.has(name)) fail(E.ENODATA);
  xattrs.set(name, Buffer.from(value));
  let total = 0;
  for (const [k, v] of xattrs) total += k.length + v.length;
  if (total > MAX_XATTR_TOTAL) fail(E.ENOSPC);
  L.updateRecord(inode, { xattrs, ctime: now() });
}

export function removexattr(L: Layer, inode: Inode, name: string): void {
  if (!name.startsWith("user.")) fail(E.EOPNOTSUPP);
  const xattrs = new Map(current(L, inode));
  if (!xattrs.delete(name)) fail(E.ENODATA);
  L.updateRecord(inode, { xattrs, ctime: now() });
}
