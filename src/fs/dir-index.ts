/**
 * The names in one stored directory: user name <-> stored name, built from one readdir the
 * first time the directory is used, then kept in step by the layer's own changes (the layer
 * is the only writer while mounted). Exact-case lookups come from here, never from the
 * stick's case-insensitive lookup.
 */
import { bytesToStored, decodeName, foldKey, isReservedStored } from "../format/names.js";
import { showPath, warnOnce } from "../log.js";
import type { StoredFacts } from "../format/describe.js";
import { DirMeta, META_PREFIX } from "./dir-meta.js";
import type { Lower } from "./lower.js";

export interface IndexEntry {
  /** stored name, byte string */
  stored: string;
  /** what the stick's readdir said; refined by lstat when the entry is looked up */
  isDir: boolean;
}

/**
 * user name -> stored name, and which are directories. A map of strings plus a set of the
 * (few) directories rather than an object per entry: a third less memory per name for a big
 * listing. get() makes the IndexEntry on demand.
 */
class NameMap {
  private readonly storedOf = new Map<string, string>();
  private readonly dirs = new Set<string>();

  has(user: string): boolean {
    return this.storedOf.has(user);
  }

  get(user: string): IndexEntry | undefined {
    const stored = this.storedOf.get(user);
    return stored === undefined ? undefined : { stored, isDir: this.dirs.has(user) };
  }

  set(user: string, stored: string, isDir: boolean): void {
    this.storedOf.set(user, stored);
    if (isDir) this.dirs.add(user);
    else this.dirs.delete(user);
  }

  delete(user: string): void {
    this.storedOf.delete(user);
    this.dirs.delete(user);
  }

  keys(): IterableIterator<string> {
    return this.storedOf.keys();
  }

  /** the stored names */
  storedNames(): IterableIterator<string> {
    return this.storedOf.values();
  }

  get size(): number {
    return this.storedOf.size;
  }
}

/** The fold key of a stored name given as bytes. */
export function foldOfBytes(stored: string): string {
  const key = foldKey(bytesToStored(stored) ?? stored);
  return key === stored ? stored : key; // one string, not two, for a name that is its own key
}

/** Adds `by` to a key's count; a count that reaches 0 goes. */
function count(counts: Map<string, number>, key: string, by: number): void {
  const n = (counts.get(key) ?? 0) + by;
  if (n <= 0) counts.delete(key);
  else counts.set(key, n);
}

export class DirIndex {
  readonly byUser = new NameMap();
  /**
   * How many stored names (and names the stick refused) fold to each key: made on the first
   * question (a new name to choose), not at build. A folder that is only looked up and
   * listed (a big listing, `git status`) never needs it: a map entry and two case
   * conversions less per name.
   */
  private folds: Map<string, number> | null = null;
  subdirs = 0;
  /** entries were added or removed since the stored directory was last fsync'd */
  entriesDirty = false;
  readonly meta: DirMeta;

  /**
   * The stored folder's own lstat, kept from the first one: the kernel asks for a folder's
   * attributes after every create or unlink in it, and nothing of them comes from the stick
   * once the layer has changed the folder (mode and times are in its record). Only the size
   * the stick reports for a folder may be older than the last change. Dropped when the layer
   * sets the folder's stick mtime.
   */
  facts: StoredFacts | null = null;

  /** record names kept even without a stored file (the home's own record) */
  readonly keep = new Set<string>();

  constructor(
    lower: Lower,
    readonly path: () => string,
    existing: boolean,
    onMetaChange: (meta: DirMeta) => void,
    onMetaLoad?: (meta: DirMeta) => void,
  ) {
    this.meta = new DirMeta(
      lower,
      path,
      () => {
        const names = this.storedNames();
        return (name) => names.has(name);
      },
      onMetaChange,
      // the same fsync makes the folder's other new entries durable: a file's fsync that
      // wrote the folder's first log does not sync the folder a second time
      () => {
        this.entriesDirty = false;
      },
      onMetaLoad,
    );
    if (existing) {
      this.build(lower);
      // Built from the stick after a restart or a forget: the layer cannot know whether its
      // entries are durable yet, so the next fsync in here syncs the directory too.
      this.entriesDirty = true;
    } else {
      this.meta.knownSlots(new Set()); // a folder just made has no log to look for
    }
  }

  private build(lower: Lower): void {
    const slots = new Set<string>();
    for (const { name, isDir } of lower.list(this.path())) {
      if (isReservedStored(name)) {
        slots.add(name);
        continue;
      }
      const unicode = bytesToStored(name);
      let user = unicode === null ? name : decodeName(unicode);
      if (user === name) user = name; // the same string, not an equal copy (memory)
      if (user.length === 0 || user.length > 255 || user === "." || user === ".." || /[/\0]/.test(user))
        user = name;
      if (this.byUser.has(user)) {
        // Only another system can store two names that decode alike: show the second one
        // under its stored name, or a numbered variant. Never hide a file.
        let alt = name;
        for (let n = 2; this.byUser.has(alt); n++) alt = `${name}~${n}`;
        warnOnce(
          `dup:${this.path()}/${name}`,
          `${showPath(this.path() + "/" + name)} is shown as ${showPath(alt)} (its name decodes like another file's)`,
        );
        user = alt;
      }
      this.add(user, name, isDir);
    }
    // the listing says which log slots exist: the log is then read without trying the others
    this.meta.knownSlots(slots);
    // A folder is listed at its first use (a lookup of its name: its link count); its log, its
    // files' lstats, its subfolders' listings and their logs come next: read ahead on other
    // threads, they overlap with the requests answered meanwhile.
    if (this.byUser.size > 0) {
      const logs = [...slots].filter((n) => n.startsWith(META_PREFIX));
      lower.prefetch?.(this.path(), logs, META_PREFIX);
    }
  }

  add(user: string, stored: string, isDir: boolean): void {
    this.byUser.set(user, stored, isDir);
    if (this.folds) count(this.folds, foldOfBytes(stored), 1);
    if (isDir) this.subdirs++;
  }

  remove(user: string): IndexEntry | undefined {
    const entry = this.byUser.get(user);
    if (!entry) return undefined;
    this.byUser.delete(user);
    if (this.folds) count(this.folds, foldOfBytes(entry.stored), -1);
    if (entry.isDir) this.subdirs--;
    return entry;
  }

  /** The stored names present, and the record names kept without a file (for compaction). */
  private storedNames(): Set<string> {
    const names = new Set(this.keep);
    for (const stored of this.byUser.storedNames()) names.add(stored);
    return names;
  }

  /** Would a new stored name clash, on a case-insensitive stick, with one already here? */
  foldTaken(stored: string): boolean {
    return this.foldCounts().has(foldOfBytes(stored));
  }

  /** Remember a name the stick refused as existing (an 8.3 alias, say) so it is not tried again. */
  markTaken(stored: string): void {
    count(this.foldCounts(), foldOfBytes(stored), 1);
  }

  private foldCounts(): Map<string, number> {
    if (this.folds) return this.folds;
    const folds = new Map<string, number>();
    for (const stored of this.byUser.storedNames()) count(folds, foldOfBytes(stored), 1);
    this.folds = folds;
    return folds;
  }

  get size(): number {
    return this.byUser.size;
  }
}
