/**
 * An fsx-like random I/O exerciser (after Apple's/Linux's fsx), written for pershome: seeded
 * random operations on a directory (a live pershome mount), each checked against an in-memory
 * model right after it ran. Operations: writes at random offsets (holes, past EOF), truncate up
 * and down, read-back, append, rename (over existing names, over another name of the same
 * file, across folders), link, unlink, chmod, fsync, close/reopen, stat, listings, and now and
 * then a full unmount + remount after which the whole model is compared with the mount.
 *
 * Everything random comes from the seed and the model only, so `--seed S --ops N` replays a
 * run exactly up to op N. The names include case twins and names FAT cannot store as they are.
 */
import fs from "node:fs";
import path from "node:path";
import { rng } from "../crash/model.js";

const C = fs.constants;

/** The names files live under: two folders, case twins, characters FAT refuses, a DOS device. */
export const NAMES = [
  "a",
  "b",
  "c",
  "Makefile",
  "makefile",
  "x:y?",
  "trail. ",
  "nul.txt",
  "été",
  "sub/a",
  "sub/B",
  "sub/b",
];
const DIRS = ["", "sub"];
const MODES = [0o600, 0o640, 0o644, 0o700, 0o755, 0o664, 0o4755, 0o1777 & 0o777];
const MAX_SIZE = 2 * 1024 * 1024;

export type OpName =
  | "write"
  | "read"
  | "truncate"
  | "append"
  | "rename"
  | "link"
  | "unlink"
  | "chmod"
  | "fsync"
  | "close"
  | "stat"
  | "list"
  | "remount";

/** Relative weights of the operations. */
const WEIGHTS: [OpName, number][] = [
  ["write", 24],
  ["read", 16],
  ["truncate", 8],
  ["append", 8],
  ["rename", 8],
  ["link", 5],
  ["unlink", 5],
  ["chmod", 6],
  ["fsync", 6],
  ["close", 4],
  ["stat", 8],
  ["list", 2],
];

interface Node {
  id: number;
  data: Buffer;
  mode: number;
  /** an open read/write descriptor on the node, if one is kept */
  fd?: number;
}

export interface FsxOptions {
  /** the directory to exercise (a mount point), empty */
  dir: string;
  seed: number;
  ops: number;
  /** a remount comes on average every this many operations (0: never) */
  remountEvery?: number;
  /** unmounts and mounts again; the exerciser has closed everything */
  remount?: () => Promise<void>;
  /** progress lines */
  progress?: (line: string) => void;
  /** how many earlier ops a mismatch report shows besides those on the file concerned */
  tail?: number;
}

export interface FsxResult {
  seed: number;
  ops: number;
  counts: Record<string, number>;
  remounts: number;
  bytesWritten: number;
  bytesRead: number;
  mismatch?: { op: number; message: string; log: string[] };
  ms: number;
}

export class Mismatch extends Error {
  constructor(
    message: string,
    readonly nodes: number[],
  ) {
    super(message);
  }
}

/** Deterministic bytes for an op: cheap, different per op and offset. */
function pattern(len: number, salt: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  let x = (salt * 2654435761) >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

function firstDiff(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

export class Fsx {
  private readonly r: () => number;
  private readonly names = new Map<string, Node>();
  private nextId = 1;
  private readonly log: { n: number; text: string; nodes: number[] }[] = [];
  readonly counts: Record<string, number> = {};
  remounts = 0;
  bytesWritten = 0;
  bytesRead = 0;

  constructor(private readonly o: FsxOptions) {
    this.r = rng(o.seed);
    // Creation modes are part of the model: no umask.
    process.umask(0);
    for (const d of DIRS) if (d) fs.mkdirSync(path.join(o.dir, d), { recursive: true });
  }

  private int(n: number): number {
    return Math.floor(this.r() * n);
  }
  private pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }
  private p(name: string): string {
    return path.join(this.o.dir, name);
  }
  private existing(): string[] {
    return NAMES.filter((n) => this.names.has(n));
  }
  private namesOf(node: Node): string[] {
    return [...this.names].filter(([, v]) => v === node).map(([k]) => k);
  }
  private note(n: number, text: string, ...nodes: (Node | undefined)[]): void {
    this.log.push({ n, text, nodes: nodes.filter((x): x is Node => !!x).map((x) => x.id) });
  }

  private fdOf(node: Node, name: string): number {
    if (node.fd === undefined) node.fd = fs.openSync(this.p(name), C.O_RDWR);
    return node.fd;
  }
  private closeNode(node: Node): void {
    if (node.fd !== undefined) fs.closeSync(node.fd);
    delete node.fd;
  }
  /** After a name went away: a node with no name left is gone (its descriptor closed). */
  private dropIfUnnamed(node: Node): void {
    if (this.namesOf(node).length === 0) this.closeNode(node);
  }
  closeAll(): void {
    for (const node of new Set(this.names.values())) this.closeNode(node);
  }

  private chooseOp(): OpName {
    const every = this.o.remountEvery ?? 0;
    if (every > 0 && this.o.remount && this.int(every) === 0) return "remount";
    const total = WEIGHTS.reduce((s, [, w]) => s + w, 0);
    let x = this.int(total);
    for (const [op, w] of WEIGHTS) {
      if (x < w) return op;
      x -= w;
    }
    return "stat";
  }

  /** Runs one op (number n) and checks its result against the model. */
  async step(n: number): Promise<void> {
    let op = this.chooseOp();
    const have = this.existing();
    if (have.length === 0 && op !== "remount" && op !== "list") op = "write";
    this.counts[op] = (this.counts[op] ?? 0) + 1;
    switch (op) {
      case "write": {
        const name = this.pick(NAMES);
        let node = this.names.get(name);
        const size = node?.data.length ?? 0;
        const where = this.int(4);
        const off = Math.min(
          MAX_SIZE - 1,
          where === 0
            ? this.int(size + 1)
            : where === 1
              ? size
              : where === 2
                ? size + this.int(65536)
                : this.int(MAX_SIZE),
        );
        const len = Math.min(MAX_SIZE - off, 1 + (this.int(8) === 0 ? this.int(262144) : this.int(16384)));
        const data = pattern(len, n);
        if (!node) {
          const mode = this.pick(MODES);
          node = { id: this.nextId++, data: Buffer.alloc(0), mode };
          node.fd = fs.openSync(this.p(name), C.O_RDWR | C.O_CREAT | C.O_EXCL, mode);
          this.names.set(name, node);
          this.note(n, `create ${name} mode ${mode.toString(8)} (node ${node.id})`, node);
        }
        const fd = this.fdOf(node, name);
        const wrote = fs.writeSync(fd, data, 0, len, off);
        if (wrote !== len) throw new Mismatch(`write ${name}: wrote ${wrote} of ${len}`, [node.id]);
        const next = Buffer.alloc(Math.max(node.data.length, off + len));
        node.data.copy(next);
        data.copy(next, off);
        node.data = next;
        this.bytesWritten += len;
        this.note(n, `write ${name} off ${off} len ${len} -> size ${next.length}`, node);
        this.maybeClose(node);
        break;
      }
      case "read": {
        const name = this.pick(have);
        const node = this.names.get(name)!;
        const size = node.data.length;
        const off = this.int(8) === 0 ? size + this.int(4096) : this.int(size + 1);
        const len = 1 + this.int(this.int(4) === 0 ? 524288 : 16384);
        this.note(n, `read ${name} off ${off} len ${len} (size ${size})`, node);
        const buf = Buffer.alloc(len);
        const fd = this.fdOf(node, name);
        let got = 0;
        while (got < len) {
          const k = fs.readSync(fd, buf, got, len - got, off + got);
          if (k === 0) break;
          got += k;
        }
        this.bytesRead += got;
        const want = node.data.subarray(Math.min(off, size), Math.min(off + len, size));
        const have2 = buf.subarray(0, got);
        if (!want.equals(have2))
          throw new Mismatch(
            `read ${name} off ${off} len ${len}: got ${got} bytes, want ${want.length}; first difference at file offset ${off + firstDiff(want, have2)}`,
            [node.id],
          );
        this.maybeClose(node);
        break;
      }
      case "truncate": {
        const name = this.pick(have);
        const node = this.names.get(name)!;
        const size = node.data.length;
        const how = this.int(4);
        const to =
          how === 0 ? 0 : how === 1 ? this.int(size + 1) : Math.min(MAX_SIZE, size + 1 + this.int(200_000));
        const byFd = this.int(2) === 0;
        this.note(n, `truncate ${name} ${size} -> ${to} (${byFd ? "ftruncate" : "truncate"})`, node);
        if (byFd) fs.ftruncateSync(this.fdOf(node, name), to);
        else fs.truncateSync(this.p(name), to);
        const next = Buffer.alloc(to);
        node.data.copy(next, 0, 0, Math.min(size, to));
        node.data = next;
        this.checkStat(name, node);
        break;
      }
      case "append": {
        const name = this.pick(have);
        const node = this.names.get(name)!;
        const len = 1 + this.int(this.int(6) === 0 ? 1_000_000 : 8192);
        if (node.data.length + len > MAX_SIZE) {
          this.note(n, `append ${name}: skipped (would exceed ${MAX_SIZE})`, node);
          break;
        }
        const data = pattern(len, n);
        this.note(n, `append ${name} len ${len} (size ${node.data.length})`, node);
        const fd = fs.openSync(this.p(name), C.O_WRONLY | C.O_APPEND);
        try {
          let done = 0;
          while (done < len) done += fs.writeSync(fd, data, done, Math.min(len - done, 131072));
        } finally {
          fs.closeSync(fd);
        }
        node.data = Buffer.concat([node.data, data]);
        this.bytesWritten += len;
        this.checkStat(name, node);
        break;
      }
      case "rename": {
        const from = this.pick(have);
        const to = this.pick(NAMES);
        const node = this.names.get(from)!;
        const over = this.names.get(to);
        this.note(n, `rename ${from} -> ${to}${over ? ` (over node ${over.id})` : ""}`, node, over);
        fs.renameSync(this.p(from), this.p(to));
        // POSIX: renaming a name onto another name of the same file does nothing.
        if (from !== to && over !== node) {
          this.names.delete(from);
          this.names.set(to, node);
          if (over) this.dropIfUnnamed(over);
        }
        this.checkStat(to, node);
        break;
      }
      case "link": {
        const from = this.pick(have);
        const free = NAMES.filter((x) => !this.names.has(x));
        if (free.length === 0) break;
        const to = this.pick(free);
        const node = this.names.get(from)!;
        this.note(n, `link ${from} -> ${to}`, node);
        fs.linkSync(this.p(from), this.p(to));
        this.names.set(to, node);
        this.checkStat(to, node);
        this.checkStat(from, node);
        break;
      }
      case "unlink": {
        const name = this.pick(have);
        const node = this.names.get(name)!;
        this.note(n, `unlink ${name}`, node);
        fs.unlinkSync(this.p(name));
        this.names.delete(name);
        this.dropIfUnnamed(node);
        for (const other of this.namesOf(node)) this.checkStat(other, node);
        break;
      }
      case "chmod": {
        const name = this.pick(have);
        const node = this.names.get(name)!;
        const mode = this.pick(MODES);
        const byFd = node.fd !== undefined && this.int(2) === 0;
        this.note(n, `chmod ${name} ${mode.toString(8)}${byFd ? " (fchmod)" : ""}`, node);
        if (byFd) fs.fchmodSync(node.fd!, mode);
        else fs.chmodSync(this.p(name), mode);
        node.mode = mode;
        this.checkStat(name, node);
        break;
      }
      case "fsync": {
        const name = this.pick(have);
        const node = this.names.get(name)!;
        const data = this.int(3) === 0;
        this.note(n, `${data ? "fdatasync" : "fsync"} ${name}`, node);
        if (data) fs.fdatasyncSync(this.fdOf(node, name));
        else fs.fsyncSync(this.fdOf(node, name));
        break;
      }
      case "close": {
        this.note(n, "close every descriptor");
        this.closeAll();
        break;
      }
      case "stat": {
        const name = this.pick(have);
        const node = this.names.get(name)!;
        this.note(n, `stat ${name}`, node);
        this.checkStat(name, node);
        break;
      }
      case "list": {
        this.note(n, "list the folders");
        this.checkListing();
        break;
      }
      case "remount": {
        this.note(n, "unmount, remount and check everything");
        this.closeAll();
        await this.o.remount!();
        this.remounts++;
        this.checkAll();
        break;
      }
    }
  }

  /** Keep the descriptor open for later ops most of the time, close it sometimes. */
  private maybeClose(node: Node): void {
    if (this.int(4) === 0) this.closeNode(node);
  }

  checkStat(name: string, node: Node): void {
    const st = fs.lstatSync(this.p(name));
    const want = { size: node.data.length, mode: node.mode & 0o7777, nlink: this.namesOf(node).length };
    const got = { size: st.size, mode: st.mode & 0o7777, nlink: st.nlink };
    if (!st.isFile() || want.size !== got.size || want.mode !== got.mode || want.nlink !== got.nlink)
      throw new Mismatch(
        `stat ${name}: ${st.isFile() ? "file" : "not a file"} ${JSON.stringify(got)}, want ${JSON.stringify(want)} (modes octal: ${got.mode.toString(8)} vs ${want.mode.toString(8)})`,
        [node.id],
      );
  }

  checkListing(): void {
    for (const d of DIRS) {
      const listed = fs
        .readdirSync(path.join(this.o.dir, d))
        .map((x) => (d ? `${d}/${x}` : x))
        .filter((x) => !DIRS.includes(x))
        .sort();
      const want = [...this.names.keys()].filter((k) => path.dirname(k) === (d || ".")).sort();
      if (JSON.stringify(listed) !== JSON.stringify(want))
        throw new Mismatch(`listing of /${d}: ${JSON.stringify(listed)}, want ${JSON.stringify(want)}`, []);
    }
  }

  /** The whole model against the mount: listings, every file's attributes and content, links. */
  checkAll(): void {
    this.checkListing();
    const inoOf = new Map<Node, number>();
    for (const [name, node] of this.names) {
      this.checkStat(name, node);
      const data = fs.readFileSync(this.p(name));
      this.bytesRead += data.length;
      if (!data.equals(node.data))
        throw new Mismatch(
          `content of ${name}: ${data.length} bytes, want ${node.data.length}; first difference at ${firstDiff(data, node.data)}`,
          [node.id],
        );
      const ino = fs.lstatSync(this.p(name)).ino;
      const seen = inoOf.get(node);
      if (seen !== undefined && seen !== ino)
        throw new Mismatch(`hard links of node ${node.id} show different inode numbers`, [node.id]);
      inoOf.set(node, ino);
    }
  }

  /** The op log for a report: the ops on the files concerned, and the last `tail` ops. */
  report(nodes: number[], tail: number): string[] {
    const last = this.log.length - tail;
    return this.log
      .filter((e, i) => i >= last || e.nodes.some((x) => nodes.includes(x)))
      .map((e) => `${String(e.n).padStart(6)} ${e.text}`);
  }
}

/** Runs `ops` operations (checking the whole model at the end); stops at the first mismatch. */
export async function runFsx(o: FsxOptions): Promise<FsxResult> {
  const t0 = Date.now();
  const x = new Fsx(o);
  let n = 0;
  const result = (): FsxResult => ({
    seed: o.seed,
    ops: n,
    counts: x.counts,
    remounts: x.remounts,
    bytesWritten: x.bytesWritten,
    bytesRead: x.bytesRead,
    ms: Date.now() - t0,
  });
  try {
    for (n = 1; n <= o.ops; n++) {
      await x.step(n);
      if (o.progress && n % 1000 === 0)
        o.progress(`fsx: ${n} ops, ${x.remounts} remounts, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    n = o.ops;
    x.closeAll();
    x.checkAll();
    if (o.remount) {
      await o.remount();
      x.remounts++;
      x.checkAll();
    }
    return result();
  } catch (e) {
    const err = e as Error;
    const nodes = e instanceof Mismatch ? e.nodes : [];
    const code = (e as NodeJS.ErrnoException).code;
    const message = e instanceof Mismatch ? err.message : `${code ?? err.name}: ${err.message}`;
    try {
      x.closeAll();
    } catch {
      /* the mount may be gone */
    }
    return { ...result(), mismatch: { op: n, message, log: x.report(nodes, o.tail ?? 12) } };
  }
}
