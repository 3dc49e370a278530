/**
 * Crash states from a record of the layer's stick calls (the ALICE idea, docs/robustness.md).
 *
 * The model of what a FAT stick keeps when it is pulled after the first k calls:
 * - every object (a file's data, a directory's entries) is on the stick as of its last
 *   fsync; fsync of a file persists its data, size and time, not its name; fsync of a
 *   directory persists its entries;
 * - of what came after, each object independently keeps any prefix of its own changes (no
 *   ordering between files, nor between a file and its directory entry);
 * - the first change an object did not fully keep may be half-kept: a write torn at a
 *   512-byte sector (the new size with the unwritten sectors as they were or zero, or the
 *   old size), a rename over a name with only the target removed (exfat-fuse removes it
 *   first) or with both names present (the new entry written before the old one is removed);
 * - a rename across directories adds the new entry before it removes the old one (the file
 *   may show under both names, never under none) — an assumption, see docs/robustness.md;
 * - no garbage: unwritten bytes read as what was there before, or as zeros.
 */
import fs from "node:fs";
import type { Baseline, LowerEvent } from "../../src/fs/recording-lower.js";

export const SECTOR = 512;

export interface MFile {
  data: Buffer;
  mtimeNs: bigint;
}
export interface MEntry {
  id: number;
  dir: boolean;
}
type Dir = Map<string, MEntry>;

type DirOp =
  | { t: "add"; name: string; entry: MEntry; replaces: boolean }
  | { t: "remove"; name: string; dep?: DirOp }
  | { t: "rename"; from: string; to: string; entry: MEntry; replaces: boolean };

type FileOp = Extract<LowerEvent, { op: "write" | "truncate" | "mtime" }>;

/** How much of one object's pending changes a crash state keeps. */
interface Choice {
  keep: number;
  /** how the next change is half-kept, if at all */
  half?: string;
  /** for a torn write: the byte offset up to which its data is on the stick */
  cut?: number;
}

export interface CrashState {
  /** events applied (the cut) */
  cut: number;
  /** what was chosen, for a report */
  label: string;
  rootId: number;
  file(id: number): MFile | undefined;
  dir(id: number): Dir | undefined;
}

/** A seeded PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function applyFileOp(f: MFile, op: FileOp): MFile {
  if (op.op === "mtime") return { data: f.data, mtimeNs: op.mtimeNs };
  if (op.op === "truncate") {
    const data = Buffer.alloc(op.size);
    f.data.copy(data, 0, 0, Math.min(op.size, f.data.length));
    return { data, mtimeNs: op.mtimeNs };
  }
  const end = op.pos + op.data.length;
  const data = Buffer.alloc(Math.max(f.data.length, end, op.size));
  f.data.copy(data);
  op.data.copy(data, op.pos);
  return { data: data.subarray(0, Math.max(f.data.length, end)), mtimeNs: op.mtimeNs };
}

/** A write torn at byte `cut` (a sector boundary), half-kept as `half`. */
function tearWrite(f: MFile, op: Extract<FileOp, { op: "write" }>, cut: number, half: string): MFile {
  const kept = op.data.subarray(0, cut - op.pos);
  if (half === "old-size") {
    // the data reached the stick, the directory entry (size, time) did not
    const data = Buffer.from(f.data);
    kept.subarray(0, Math.max(0, data.length - op.pos)).copy(data, op.pos);
    return { data, mtimeNs: f.mtimeNs };
  }
  const size =
    half === "new-size" ? Math.max(f.data.length, op.pos + op.data.length) : Math.max(f.data.length, cut);
  const data = Buffer.alloc(size); // unwritten bytes past the old end read as zeros
  f.data.copy(data, 0, 0, Math.min(size, f.data.length));
  kept.copy(data, op.pos);
  return { data, mtimeNs: op.mtimeNs };
}

function applyDirOp(d: Dir, op: DirOp, half?: string): void {
  switch (op.t) {
    case "add":
      if (half === "target-removed") d.delete(op.name);
      else d.set(op.name, op.entry);
      return;
    case "remove":
      d.delete(op.name);
      return;
    case "rename":
      if (half === "target-removed") d.delete(op.to);
      else if (half === "both") d.set(op.to, op.entry);
      else {
        d.delete(op.from);
        d.set(op.to, op.entry);
      }
  }
}

function halvesOf(op: DirOp): string[] {
  if (op.t === "add") return op.replaces ? ["target-removed"] : [];
  if (op.t === "rename") return op.replaces ? ["target-removed", "both"] : ["both"];
  return [];
}

/**
 * Replays a record event by event. At any point, `states(n, rand)` draws crash states for
 * the current cut; `advance()` takes the next event.
 */
export class CrashModel {
  /** the stick as forced by fsyncs so far */
  private readonly files = new Map<number, MFile>();
  private readonly dirs = new Map<number, Dir>();
  /** the entries as the layer saw them (to know what a rename moves) */
  private readonly live = new Map<number, Dir>();
  private readonly pendingFiles = new Map<number, FileOp[]>();
  private readonly pendingDirs = new Map<number, DirOp[]>();
  private readonly opDir = new Map<DirOp, number>();
  readonly rootId: number;
  cut = 0;

  constructor(
    baseline: Baseline,
    private readonly events: readonly LowerEvent[],
  ) {
    this.rootId = baseline.rootId;
    for (const [id, f] of baseline.files) this.files.set(id, f);
    for (const [id, d] of baseline.dirs) {
      this.dirs.set(id, new Map(d));
      this.live.set(id, new Map(d));
    }
  }

  get done(): boolean {
    return this.cut >= this.events.length;
  }

  private pushDir(dir: number, op: DirOp): void {
    const l = this.pendingDirs.get(dir) ?? [];
    l.push(op);
    this.pendingDirs.set(dir, l);
    this.opDir.set(op, dir);
  }

  private liveDir(id: number): Dir {
    let d = this.live.get(id);
    if (!d) this.live.set(id, (d = new Map()));
    return d;
  }

  /** Makes the first `upto` pending changes of a directory durable (and what they depend on). */
  private persistDir(dir: number, upto: number): void {
    const list = this.pendingDirs.get(dir);
    if (!list) return;
    const ops = list.splice(0, upto);
    const d = this.dirs.get(dir) ?? new Map<string, MEntry>();
    for (const op of ops) {
      if (op.t === "remove" && op.dep) this.persistThrough(op.dep);
      applyDirOp(d, op);
      this.opDir.delete(op);
    }
    this.dirs.set(dir, d);
    if (list.length === 0) this.pendingDirs.delete(dir);
  }

  private persistThrough(op: DirOp): void {
    const dir = this.opDir.get(op);
    if (dir === undefined) return; // already durable
    const i = this.pendingDirs.get(dir)!.indexOf(op);
    this.persistDir(dir, i + 1);
  }

  advance(): void {
    const e = this.events[this.cut++]!;
    switch (e.op) {
      case "create":
        this.files.set(e.id, { data: Buffer.alloc(0), mtimeNs: e.mtimeNs });
        this.liveDir(e.dir).set(e.name, { id: e.id, dir: false });
        this.pushDir(e.dir, { t: "add", name: e.name, entry: { id: e.id, dir: false }, replaces: false });
        return;
      case "mkdir":
        this.dirs.set(e.id, new Map());
        this.live.set(e.id, new Map());
        this.liveDir(e.dir).set(e.name, { id: e.id, dir: true });
        this.pushDir(e.dir, { t: "add", name: e.name, entry: { id: e.id, dir: true }, replaces: false });
        return;
      case "unlink":
      case "rmdir":
        this.liveDir(e.dir).delete(e.name);
        this.pushDir(e.dir, { t: "remove", name: e.name });
        return;
      case "rename": {
        const from = this.liveDir(e.fromDir);
        const to = this.liveDir(e.toDir);
        const entry = from.get(e.from);
        if (!entry) throw new Error(`model: rename of an unknown entry ${e.from}`);
        const replaces = to.has(e.to);
        from.delete(e.from);
        to.set(e.to, entry);
        if (e.fromDir === e.toDir) {
          this.pushDir(e.toDir, { t: "rename", from: e.from, to: e.to, entry, replaces });
        } else {
          const add: DirOp = { t: "add", name: e.to, entry, replaces };
          this.pushDir(e.toDir, add);
          this.pushDir(e.fromDir, { t: "remove", name: e.from, dep: add });
        }
        return;
      }
      case "write":
      case "truncate":
      case "mtime": {
        const l = this.pendingFiles.get(e.id) ?? [];
        l.push(e);
        this.pendingFiles.set(e.id, l);
        return;
      }
      case "fsync": {
        const l = this.pendingFiles.get(e.id);
        if (!l) return;
        let f = this.files.get(e.id)!;
        for (const op of l) f = applyFileOp(f, op);
        this.files.set(e.id, f);
        this.pendingFiles.delete(e.id);
        return;
      }
      case "fsyncDir":
        this.persistDir(e.dir, Infinity);
        return;
    }
  }

  /** Objects with changes a crash may lose, right now. */
  get pendingCount(): number {
    return this.pendingFiles.size + this.pendingDirs.size;
  }

  /**
   * One crash state at the current cut. `mode` "none" keeps nothing pending, "all" keeps
   * everything (the state a clean stop would leave), "random" draws per object.
   */
  state(rand: () => number, mode: "none" | "all" | "random" = "random"): CrashState {
    const fileChoice = new Map<number, Choice>();
    const dirChoice = new Map<number, Choice>();
    const labels: string[] = [];
    const pick = (n: number): number => {
      if (mode === "none") return 0;
      if (mode === "all") return n;
      const r = rand();
      // the ends are where protocols break most often: weigh them up
      if (r < 0.2) return 0;
      if (r < 0.4) return n;
      return Math.floor(rand() * (n + 1));
    };
    for (const [id, ops] of this.pendingFiles) {
      const c: Choice = { keep: pick(ops.length) };
      const next = ops[c.keep];
      if (mode === "random" && next?.op === "write" && next.data.length > 0 && rand() < 0.5) {
        const cuts = [next.pos];
        for (let s = Math.floor(next.pos / SECTOR + 1) * SECTOR; s < next.pos + next.data.length; s += SECTOR)
          cuts.push(s);
        c.cut = cuts[Math.floor(rand() * cuts.length)]!;
        c.half = ["sectors", "new-size", "old-size"][Math.floor(rand() * 3)]!;
      }
      fileChoice.set(id, c);
      if (c.keep < ops.length)
        labels.push(`f${id}:${c.keep}/${ops.length}${c.half ? `+${c.half}@${c.cut}` : ""}`);
    }
    for (const [id, ops] of this.pendingDirs) {
      const c: Choice = { keep: pick(ops.length) };
      const next = ops[c.keep];
      const halves = next ? halvesOf(next) : [];
      if (mode === "random" && halves.length > 0 && rand() < 0.5)
        c.half = halves[Math.floor(rand() * halves.length)]!;
      dirChoice.set(id, c);
    }
    // a removal that is the second half of a move waits for its first half
    for (let changed = true; changed;) {
      changed = false;
      for (const [id, ops] of this.pendingDirs) {
        const c = dirChoice.get(id)!;
        for (let i = 0; i < c.keep; i++) {
          const op = ops[i]!;
          if (op.t !== "remove" || !op.dep) continue;
          const depDir = this.opDir.get(op.dep);
          if (depDir === undefined) continue;
          const dc = dirChoice.get(depDir)!;
          if (this.pendingDirs.get(depDir)!.indexOf(op.dep) < dc.keep) continue;
          c.keep = i;
          delete c.half;
          changed = true;
          break;
        }
      }
    }
    for (const [id, ops] of this.pendingDirs) {
      const c = dirChoice.get(id)!;
      if (c.keep < ops.length) labels.push(`d${id}:${c.keep}/${ops.length}${c.half ? `+${c.half}` : ""}`);
    }
    const fileCache = new Map<number, MFile>();
    const dirCache = new Map<number, Dir>();
    return {
      cut: this.cut,
      label: labels.join(" ") || "(everything durable)",
      rootId: this.rootId,
      file: (id) => {
        const base = this.files.get(id);
        const ops = this.pendingFiles.get(id);
        if (!base || !ops) return base;
        let f = fileCache.get(id);
        if (f) return f;
        const c = fileChoice.get(id)!;
        f = base;
        for (let i = 0; i < c.keep; i++) f = applyFileOp(f, ops[i]!);
        const next = ops[c.keep];
        if (c.half && next?.op === "write") f = tearWrite(f, next, c.cut!, c.half);
        fileCache.set(id, f);
        return f;
      },
      dir: (id) => {
        const base = this.dirs.get(id);
        const ops = this.pendingDirs.get(id);
        if (!base || !ops) return base;
        let d = dirCache.get(id);
        if (d) return d;
        const c = dirChoice.get(id)!;
        d = new Map(base);
        for (let i = 0; i < c.keep; i++) applyDirOp(d, ops[i]!);
        if (c.half && ops[c.keep]) applyDirOp(d, ops[c.keep]!, c.half);
        dirCache.set(id, d);
        return d;
      },
    };
  }
}

/** Writes a crash state out as a plain directory tree (files with their data and mtimes). */
export function materialise(state: CrashState, out: string): void {
  fs.mkdirSync(out, { recursive: true });
  const seen = new Set<number>();
  const write = (id: number, path: string): void => {
    const d = state.dir(id);
    if (!d || seen.has(id)) return; // a directory shown under two names is written once
    seen.add(id);
    for (const [name, e] of d) {
      const p = Buffer.from(path + "/" + name, "latin1");
      if (e.dir) {
        fs.mkdirSync(p);
        write(e.id, path + "/" + name);
      } else {
        const f = state.file(e.id) ?? { data: Buffer.alloc(0), mtimeNs: 0n };
        fs.writeFileSync(p, f.data);
        const t = Number(f.mtimeNs) / 1e9;
        fs.utimesSync(p, t, t);
      }
    }
    seen.delete(id);
  };
  write(state.rootId, Buffer.from(out).toString("latin1"));
}
