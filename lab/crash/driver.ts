/**
 * The layer driven in-process, without FUSE: path-based calls on the very operations the
 * kernel requests reach (src/fs/ops/), as one user's programs would make them. Used by the
 * crash-state checker (lab/crash/crash-states.ts) and by fuzzers.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import { prepareLower } from "../../src/fs/mount.js";
import { Layer, NO_ATTR } from "../../src/fs/layer.js";
import type { Lower } from "../../src/fs/lower.js";
import type { Inode } from "../../src/fs/inode.js";
import type { FileHandle } from "../../src/fs/handles.js";
import * as dirs from "../../src/fs/ops/dirs.js";
import * as entries from "../../src/fs/ops/entries.js";
import * as files from "../../src/fs/ops/files.js";
import * as links from "../../src/fs/ops/links.js";
import * as xattrs from "../../src/fs/ops/xattrs.js";
import { S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK } from "../../src/fs/ops/modes.js";
import { SetattrValid as V } from "../../src/native/types.js";
import type { Attr } from "../../src/native/types.js";

const C = fs.constants;
/** a user path ("a/b", UTF-8) as the layer's byte-string names */
const parts = (p: string): string[] =>
  p
    .split("/")
    .filter(Boolean)
    .map((s) => Buffer.from(s, "utf8").toString("latin1"));

export type ViewKind = "f" | "d" | "l" | "p" | "s";
export interface ViewEntry {
  kind: ViewKind;
  perm: number;
  size: number;
  sha?: string;
  data?: Buffer;
  target?: string;
}

export const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex").slice(0, 16);

function kindOf(mode: number): ViewKind {
  switch (mode & S_IFMT) {
    case S_IFDIR:
      return "d";
    case S_IFLNK:
      return "l";
    case S_IFIFO:
      return "p";
    case S_IFSOCK:
      return "s";
    case S_IFREG:
      return "f";
  }
  throw new Error(`unexpected file type ${(mode & S_IFMT).toString(8)}`);
}

function attrWith(a: Partial<Attr>): Attr {
  return { ...NO_ATTR, ...a };
}

export class HomeDriver {
  readonly L: Layer;
  private readonly open = new Set<FileHandle>();

  constructor(readonly lower: Lower) {
    // PERSHOME_META_BUDGET: a small budget makes the layer drop and read again folders' logs
    // between the workload's steps (src/fs/layer.ts trimMetas)
    const metaBudget = Number(process.env["PERSHOME_META_BUDGET"]) || undefined;
    this.L = new Layer(lower, { uid: 0, gid: 0, attrTimeout: 1, entryTimeout: 1, metaBudget });
  }

  /** A stick's pershome directory made ready as `pershome mount` does (the format marker). */
  static prepare(dir: string): void {
    prepareLower(dir);
  }

  resolve(path: string): Inode {
    let cur = this.L.root;
    for (const name of parts(path)) {
      const e = entries.lookup(this.L, cur, name);
      const next = e.ino === 0 ? undefined : this.L.inodes.get(e.ino);
      if (!next) throw Object.assign(new Error(`no such entry: ${path}`), { code: "ENOENT" });
      cur = next;
    }
    return cur;
  }

  /** What the kernel's request does first (src/fs/filesystem.ts): makes a pending first hard link. */
  private request(what: string): void {
    links.beforeRequest(this.L, what);
    this.L.trimMetas();
  }

  private parent(path: string): [Inode, string] {
    const p = parts(path);
    const name = p.pop();
    if (name === undefined) throw new Error("the root has no parent");
    return [this.resolve(p.map((s) => Buffer.from(s, "latin1").toString("utf8")).join("/")), name];
  }

  mkdir(path: string, mode = 0o755): void {
    this.request("mkdir");
    const [dir, name] = this.parent(path);
    entries.mkdir(this.L, dir, name, mode);
  }

  create(path: string, mode = 0o644): FileHandle {
    this.request("create");
    const [dir, name] = this.parent(path);
    const { h } = files.create(this.L, dir, name, mode, C.O_WRONLY | C.O_CREAT | C.O_EXCL);
    this.open.add(h);
    return h;
  }

  openFile(path: string, flags: number): FileHandle {
    this.request("open");
    const h = files.open(this.L, this.resolve(path), flags);
    this.open.add(h);
    return h;
  }

  write(h: FileHandle, data: Buffer, off: number): void {
    this.request("write");
    // the kernel sends writes of at most 1 MiB (128 KiB here, to make more of them)
    for (let done = 0; done < data.length;) {
      const chunk = data.subarray(done, done + 128 * 1024);
      done += files.write(this.L, h, chunk, off + done);
    }
  }

  fsync(h: FileHandle): void {
    this.request("fsync");
    files.fsync(this.L, h, false);
  }

  close(h: FileHandle): void {
    this.request("release");
    this.open.delete(h);
    files.release(this.L, h);
  }

  /** Creates (or truncates) a file with this content, optionally fsyncs it, closes it. */
  writeFile(path: string, data: Buffer, opts: { mode?: number; sync?: boolean } = {}): void {
    let h: FileHandle;
    try {
      this.resolve(path);
      h = this.openFile(path, C.O_WRONLY | C.O_TRUNC);
    } catch (err) {
      if ((err as { code?: string }).code !== "ENOENT") throw err;
      h = this.create(path, opts.mode ?? 0o644);
    }
    this.write(h, data, 0);
    if (opts.sync) this.fsync(h);
    this.close(h);
  }

  append(path: string, data: Buffer, sync: boolean): void {
    const h = this.openFile(path, C.O_WRONLY);
    this.write(h, data, files.getattr(this.L, h.inode).size);
    if (sync) this.fsync(h);
    this.close(h);
  }

  chmod(path: string, mode: number): void {
    this.request("setattr");
    files.setattr(this.L, this.resolve(path), attrWith({ mode }), V.MODE, undefined);
  }

  truncate(path: string, size: number): void {
    this.request("setattr");
    files.setattr(this.L, this.resolve(path), attrWith({ size }), V.SIZE, undefined);
  }

  utimes(path: string, sec: number): void {
    this.request("setattr");
    files.setattr(
      this.L,
      this.resolve(path),
      attrWith({ atimeSec: sec, mtimeSec: sec }),
      V.ATIME | V.MTIME,
      undefined,
    );
  }

  /** fsync of a file by path (open, fsync, close), as `sync FILE` does. */
  syncFile(path: string): void {
    const h = this.openFile(path, C.O_RDONLY);
    this.fsync(h);
    this.close(h);
  }

  fsyncdir(path: string): void {
    this.request("fsyncdir");
    dirs.fsyncdir(this.L, this.resolve(path));
  }

  rename(from: string, to: string, flags = 0): void {
    this.request("rename");
    const [a, an] = this.parent(from);
    const [b, bn] = this.parent(to);
    entries.rename(this.L, a, an, b, bn, flags);
  }

  unlink(path: string): void {
    const [dir, name] = this.parent(path);
    entries.unlink(this.L, dir, name);
  }

  rmdir(path: string): void {
    this.request("rmdir");
    const [dir, name] = this.parent(path);
    entries.rmdir(this.L, dir, name);
  }

  symlink(target: string, path: string): void {
    this.request("symlink");
    const [dir, name] = this.parent(path);
    entries.symlink(this.L, dir, name, Buffer.from(target));
  }

  link(existing: string, path: string): void {
    this.request("link");
    const [dir, name] = this.parent(path);
    links.link(this.L, this.resolve(existing), dir, name);
  }

  mkfifo(path: string, mode = 0o644): void {
    this.request("mknod");
    const [dir, name] = this.parent(path);
    entries.mknod(this.L, dir, name, S_IFIFO | mode);
  }

  setxattr(path: string, name: string, value: Buffer): void {
    this.request("setxattr");
    xattrs.setxattr(this.L, this.resolve(path), name, value, 0);
  }

  /** What the 2-second timer of a mount does. */
  tick(): void {
    this.L.flushAll(false);
  }

  /** What a clean unmount does: open files settled and closed, every record written. */
  unmount(): void {
    for (const h of [...this.open]) this.close(h);
    this.L.flushAll(true);
  }

  /** How one entry looks through the layer, or null when it is not there. */
  view(path: string): ViewEntry | null {
    this.request("lookup");
    let inode: Inode;
    try {
      inode = this.resolve(path);
    } catch (err) {
      if ((err as { code?: string }).code === "ENOENT") return null;
      throw err;
    }
    return this.viewOf(inode);
  }

  viewOf(inode: Inode): ViewEntry {
    const a = files.getattr(this.L, inode);
    const v: ViewEntry = { kind: kindOf(a.mode), perm: a.mode & 0o7777, size: a.size };
    if (v.kind === "f") {
      const h = files.open(this.L, inode, C.O_RDONLY);
      try {
        const chunks: Buffer[] = [];
        const buf = Buffer.allocUnsafe(1 << 20);
        for (let off = 0; ;) {
          // What the addon's replyDataFd reads for the kernel: the stored file's descriptor.
          const length = this.L.lower.read(files.readableFd(h), buf, buf.length, off);
          if (length === 0) break;
          chunks.push(Buffer.from(buf.subarray(0, length)));
          off += length;
        }
        v.data = Buffer.concat(chunks);
        v.sha = sha(v.data);
      } finally {
        files.release(this.L, h);
      }
    } else if (v.kind === "l") v.target = entries.readlink(this.L, inode).toString("utf8");
    return v;
  }

  /**
   * Lists the whole home as a user would (readdirplus, then every file read and every link
   * read), and checks that no stored entry is left out of a listing.
   */
  walk(): { view: Map<string, ViewEntry>; problems: string[] } {
    this.request("readdir");
    const view = new Map<string, ViewEntry>();
    const problems: string[] = [];
    const visit = (dir: Inode, path: string): void => {
      const h = dirs.opendir(this.L, dir);
      const listed = dirs.readdirplus(this.L, h, 1 << 30, 0).filter((e) => e.off > 2);
      // each listed entry is a lookup the kernel holds (as src/fs/filesystem.ts counts it)
      for (const e of listed) {
        const i = this.L.inodes.get(e.entry.ino);
        if (i) i.nlookup++;
      }
      const stored = this.lower
        .list(this.L.pathOf(dir))
        .filter((e) => !e.name.startsWith(".pershome")).length;
      if (listed.length !== stored)
        problems.push(`${path || "/"}: ${stored} stored entries, ${listed.length} listed (a file is hidden)`);
      for (const e of listed) {
        // a name that is not UTF-8 is kept apart (\xNN for each byte), not folded into U+FFFD
        const raw = Buffer.from(e.name);
        const text = raw.toString("utf8");
        const name = Buffer.from(text, "utf8").equals(raw)
          ? text
          : raw.toString("latin1").replace(/[\x80-\xff]/g, (c) => `\\x${c.charCodeAt(0).toString(16)}`);
        const p = path ? `${path}/${name}` : name;
        // node id 0: a child the kernel holds already (src/fs/ops/dirs.ts), found as it would
        // find its cached entry
        const child =
          e.entry.ino !== 0 ? this.L.inodes.get(e.entry.ino) : this.L.child(dir, raw.toString("latin1"));
        if (!child) {
          problems.push(`${p}: listed without an inode`);
          continue;
        }
        try {
          const v = this.viewOf(child);
          view.set(p, v);
          if (v.kind === "d") visit(child, p);
        } catch (err) {
          problems.push(`${p}: ${(err as Error).message}`);
        }
      }
    };
    visit(this.L.root, "");
    return { view, problems };
  }
}
