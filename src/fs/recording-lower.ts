/**
 * A `Lower` that passes every call to another one and records each call that changes the
 * stick, as an event on stable object ids: the input of the crash-state model
 * (lab/crash/, docs/robustness.md). Only for tests and tools: `pershome mount` never builds
 * one, so the layer's hot path is the plain NodeLower.
 *
 * Files and directories are named by ids the recorder hands out (the lower's own inode
 * numbers are reused after an unlink); directory entries by (directory id, stored name).
 * Reads are not recorded: they change nothing a crash could keep or lose.
 */
import fs from "node:fs";
import type { StoredFacts } from "../format/describe.js";
import type { Lower, LowerEntry } from "./lower.js";
import { hasCode } from "./errors.js";

const C = fs.constants;
const b = (p: string): Buffer => Buffer.from(p, "latin1");

export type LowerEvent =
  /** a new empty regular file under `name` in directory `dir` */
  | { op: "create"; dir: number; name: string; id: number; mtimeNs: bigint }
  | { op: "mkdir"; dir: number; name: string; id: number }
  | { op: "unlink"; dir: number; name: string }
  | { op: "rmdir"; dir: number; name: string }
  | { op: "rename"; fromDir: number; from: string; toDir: number; to: string }
  /** data written at `pos`; `size` and `mtimeNs` are the file's right after */
  | { op: "write"; id: number; pos: number; data: Buffer; size: number; mtimeNs: bigint }
  | { op: "truncate"; id: number; size: number; mtimeNs: bigint }
  | { op: "mtime"; id: number; mtimeNs: bigint }
  | { op: "fsync"; id: number }
  | { op: "fsyncDir"; dir: number };

/** The stick as it was when recording started: every object fully on the stick. */
export interface Baseline {
  rootId: number;
  files: Map<number, { data: Buffer; mtimeNs: bigint }>;
  dirs: Map<number, Map<string, { id: number; dir: boolean }>>;
}

export class RecordingLower implements Lower {
  readonly root: string;
  readonly events: LowerEvent[] = [];
  readonly baseline: Baseline;
  private readonly idOfIno = new Map<bigint, number>();
  private readonly idOfFd = new Map<number, number>();
  private nextId = 1;

  constructor(readonly inner: Lower) {
    this.root = inner.root;
    this.baseline = { rootId: 0, files: new Map(), dirs: new Map() };
    this.baseline.rootId = this.scan(this.root);
  }

  private scan(dir: string): number {
    const id = this.assign(fs.lstatSync(b(dir), { bigint: true }).ino);
    const entries = new Map<string, { id: number; dir: boolean }>();
    this.baseline.dirs.set(id, entries);
    for (const e of this.inner.list(dir)) {
      const p = dir + "/" + e.name;
      const st = fs.lstatSync(b(p), { bigint: true });
      if (st.isDirectory()) entries.set(e.name, { id: this.scan(p), dir: true });
      else if (st.isFile()) {
        const fid = this.assign(st.ino);
        this.baseline.files.set(fid, { data: fs.readFileSync(b(p)), mtimeNs: st.mtimeNs });
        entries.set(e.name, { id: fid, dir: false });
      } else throw new Error(`recording: ${p} is neither a file nor a directory`);
    }
    return id;
  }

  private assign(ino: bigint): number {
    const id = this.nextId++;
    this.idOfIno.set(ino, id);
    return id;
  }

  private idOfPath(path: string): number {
    const ino = fs.lstatSync(b(path), { bigint: true }).ino;
    const id = this.idOfIno.get(ino);
    if (id === undefined) throw new Error(`recording: ${path} was not made through the recorder`);
    return id;
  }

  private split(path: string): { dir: number; name: string } {
    const i = path.lastIndexOf("/");
    return { dir: this.idOfPath(path.slice(0, i)), name: path.slice(i + 1) };
  }

  private fdId(fd: number): number {
    const id = this.idOfFd.get(fd);
    if (id === undefined) throw new Error(`recording: fd ${fd} was not opened through the recorder`);
    return id;
  }

  private after(fd: number): { size: number; mtimeNs: bigint } {
    const st = fs.fstatSync(fd, { bigint: true });
    return { size: Number(st.size), mtimeNs: st.mtimeNs };
  }

  // ---- reads: passed through ----------------------------------------------------------

  stat(path: string): StoredFacts | null {
    return this.inner.stat(path);
  }
  fstat(fd: number): StoredFacts {
    return this.inner.fstat(fd);
  }
  list(dir: string): LowerEntry[] {
    return this.inner.list(dir);
  }
  read(fd: number, buf: Buffer, length: number, position: number): number {
    return this.inner.read(fd, buf, length, position);
  }
  statfs(): fs.StatsFs {
    return this.inner.statfs();
  }
  readSmall(path: string, max: number): Buffer | null {
    return this.inner.readSmall(path, max);
  }
  prefetch(dir: string, files: string[], subPrefix: string): void {
    this.inner.prefetch?.(dir, files, subPrefix);
  }

  // ---- changes: passed through and recorded ------------------------------------------

  open(path: string, flags: number, mode?: number): number {
    const fd = this.inner.open(path, flags, mode);
    const ino = fs.fstatSync(fd, { bigint: true }).ino;
    const id = this.idOfIno.get(ino);
    if (id === undefined) {
      this.inner.close(fd);
      throw new Error(`recording: ${path} was not made through the recorder`);
    }
    this.idOfFd.set(fd, id);
    if (flags & C.O_TRUNC) this.events.push({ op: "truncate", id, ...this.after(fd) });
    return fd;
  }

  createExclusive(path: string, flags: number): number {
    const fd = this.inner.createExclusive(path, flags);
    const { dir, name } = this.split(path);
    const id = this.assign(fs.fstatSync(fd, { bigint: true }).ino);
    this.idOfFd.set(fd, id);
    this.events.push({ op: "create", dir, name, id, mtimeNs: this.after(fd).mtimeNs });
    return fd;
  }

  createExclusiveFacts(path: string, flags: number): { fd: number; facts: StoredFacts } {
    const fd = this.createExclusive(path, flags);
    return { fd, facts: this.inner.fstat(fd) };
  }

  close(fd: number): void {
    this.idOfFd.delete(fd);
    this.inner.close(fd);
  }

  write(fd: number, data: Buffer, position: number | null): number {
    const id = this.fdId(fd);
    const pos = position ?? this.inner.fstat(fd).size; // null: only with O_APPEND
    const n = this.inner.write(fd, data, position);
    this.events.push({ op: "write", id, pos, data: Buffer.from(data.subarray(0, n)), ...this.after(fd) });
    return n;
  }

  fsync(fd: number): void {
    this.inner.fsync(fd);
    this.events.push({ op: "fsync", id: this.fdId(fd) });
  }

  fdatasync(fd: number): void {
    this.inner.fdatasync(fd);
    this.events.push({ op: "fsync", id: this.fdId(fd) });
  }

  ftruncate(fd: number, size: number): void {
    this.inner.ftruncate(fd, size);
    this.events.push({ op: "truncate", id: this.fdId(fd), size, mtimeNs: this.after(fd).mtimeNs });
  }

  fsyncDir(path: string): void {
    this.inner.fsyncDir(path);
    this.events.push({ op: "fsyncDir", dir: this.idOfPath(path) });
  }

  mkdir(path: string): void {
    this.inner.mkdir(path);
    const { dir, name } = this.split(path);
    const id = this.assign(fs.lstatSync(b(path), { bigint: true }).ino);
    this.events.push({ op: "mkdir", dir, name, id });
  }

  rmdir(path: string): void {
    const { dir, name } = this.split(path);
    this.inner.rmdir(path);
    this.events.push({ op: "rmdir", dir, name });
  }

  unlink(path: string): void {
    const { dir, name } = this.split(path);
    this.inner.unlink(path);
    this.events.push({ op: "unlink", dir, name });
  }

  unlinkIfExists(path: string): void {
    try {
      this.unlink(path);
    } catch (err) {
      if (!hasCode(err, "ENOENT")) throw err;
    }
  }

  rename(from: string, to: string): void {
    const f = this.split(from);
    const t = this.split(to);
    this.inner.rename(from, to);
    this.events.push({ op: "rename", fromDir: f.dir, from: f.name, toDir: t.dir, to: t.name });
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

  setMtime(path: string, sec: number, nsec: number): void {
    this.inner.setMtime(path, sec, nsec);
    const id = this.idOfPath(path);
    this.events.push({ op: "mtime", id, mtimeNs: fs.lstatSync(b(path), { bigint: true }).mtimeNs });
  }

  /** As NodeLower.writeNew, in recorded steps (create, write, fsync). */
  writeNew(path: string, data: Buffer, sync: boolean): void {
    const fd = this.createExclusive(path, C.O_WRONLY);
    try {
      if (data.length > 0) this.write(fd, data, 0);
      if (sync) this.fsync(fd);
    } finally {
      this.close(fd);
    }
  }

  /** As NodeLower.append, in recorded steps (writes at the end, fsync). */
  append(path: string, data: Buffer, sync: boolean): void {
    const fd = this.open(path, C.O_WRONLY | C.O_APPEND);
    try {
      let done = 0;
      while (done < data.length) done += this.write(fd, data.subarray(done), null);
      if (sync) this.fsync(fd);
    } finally {
      this.close(fd);
    }
  }
}
