/**
 * The metadata log of one stored directory (docs/format.md, "The log file" and "Crash
 * safety"). Loaded on first use, changed in memory at once, written in batches: appended to
 * the active slot, or compacted into the other slot (A/B, never overwritten in place).
 */
import { MAX_LOG_BYTES, parseLog, recordLine, snapshotText, tombstoneLine } from "../format/records.js";
import type { MetaRecord } from "../format/records.js";
import { olderRecordMatches, recordApplies } from "../format/describe.js";
import type { StoredFacts } from "../format/describe.js";
import { showPath, warnOnce } from "../log.js";
import { hasCode } from "./errors.js";
import type { Lower } from "./lower.js";

export const META_SLOTS = [".pershome.meta.a", ".pershome.meta.b"] as const;
/** what both slot names start with (and no other stored name: they are reserved) */
export const META_PREFIX = ".pershome.meta.";
type Slot = 0 | 1;

export class DirMeta {
  private records = new Map<string, MetaRecord>();
  /** changes not yet on the stick, last state per name (null: removed) */
  private pending = new Map<string, MetaRecord | null>();
  private loaded = false;
  private active: Slot | null = null;
  private gen = 0;
  private junk = new Set<Slot>();
  private needsCompaction = false;
  private appended = 0;
  private unsynced = false;
  /** names whose last record was appended without an fsync of the log */
  private readonly unsyncedNames = new Set<string>();
  /** the active log is a folder's first, its entry not yet synced (see compact) */
  private entryUnsynced = false;
  /** earlier records of names, as the log holds them (see ParsedLog.older) */
  private older = new Map<string, MetaRecord[]>();
  /**
   * Which names may have a record on the stick (see onStick), kept as the exceptions to "every
   * name in `records`" rather than as a second set of all names (memory, for a big home):
   * `fresh`, names in `records` whose record was never written out; `gone`, names not in
   * `records` whose record (or an earlier one) may still be on the stick.
   */
  private readonly fresh = new Set<string>();
  private readonly gone = new Set<string>();
  /** gone's size right after the log was read: more since means a record went in this mount */
  private goneAtLoad = 0;
  /** names given a record while mounted: never pruned (a record may precede its file) */
  private readonly written = new Set<string>();
  /** the log slots the directory's listing showed (see knownSlots); null: try both */
  private presentSlots: Set<string> | null = null;
  /** set at every use; the layer's sweep clears it (Layer.trimMetas) */
  used = false;

  /**
   * @param dirPath the directory's current stored path (it changes when the directory moves)
   * @param present gives a test of whether a stored name still exists (asked once per
   *   compaction), to drop records of vanished files
   */
  constructor(
    private readonly lower: Lower,
    private readonly dirPath: () => string,
    private readonly present: () => (name: string) => boolean,
    private readonly onChange: (meta: DirMeta) => void,
    /** after the layer fsync'd this folder: every entry in it is on the stick for good */
    private readonly onFolderSynced: () => void = () => undefined,
    /** after the log was read (again): the layer counts the records held (Layer.trimMetas) */
    private readonly onLoad: (meta: DirMeta) => void = () => undefined,
  ) {}

  /** how many records are held in memory */
  get held(): number {
    return this.loaded ? this.records.size : 0;
  }

  /**
   * Nothing held differs from the log on the stick, and nothing about this folder is waiting to
   * be written or decided: its records may be dropped and read again at the next use, which is
   * then exactly the first read of a folder not used yet in this mount. (No record set, removed
   * or appended since the log was read, so the earlier records and the names without one are
   * what the log gives again.)
   */
  get idle(): boolean {
    return (
      this.loaded &&
      this.pending.size === 0 &&
      !this.unsynced &&
      this.unsyncedNames.size === 0 &&
      !this.entryUnsynced &&
      !this.needsCompaction &&
      this.junk.size === 0 &&
      this.fresh.size === 0 &&
      this.gone.size === this.goneAtLoad &&
      this.written.size === 0
    );
  }

  /** Drops the records of an idle log (see idle); the next use reads the log again. */
  unload(): void {
    if (!this.idle) return;
    // the one slot an idle log has: the next read opens only that one
    this.presentSlots = new Set(this.active === null ? [] : [META_SLOTS[this.active]]);
    this.records = new Map();
    this.older = new Map();
    this.gone.clear();
    this.goneAtLoad = 0;
    this.active = null;
    this.gen = 0;
    this.appended = 0;
    this.loaded = false;
  }

  /**
   * The reserved names the directory's listing showed, before the log is first read: slots
   * not among them are not opened (on exfat-fuse each miss is a round trip to the driver).
   */
  knownSlots(present: Set<string>): void {
    if (!this.loaded) this.presentSlots = present;
  }

  get(name: string): MetaRecord | undefined {
    this.load();
    return this.records.get(name);
  }

  set(record: MetaRecord): void {
    this.load();
    if (!this.logged(record.name)) this.fresh.add(record.name);
    this.gone.delete(record.name);
    this.records.set(record.name, record);
    this.pending.set(record.name, record);
    this.written.add(record.name);
    this.onChange(this);
  }

  /**
   * An earlier record of `name` that matches the stored file exactly, when the latest one
   * does not apply (or the name's record was removed): what a crash between a record written
   * ahead and the stick's own change leaves. Taken over as the name's record.
   */
  fallback(name: string, facts: StoredFacts): MetaRecord | undefined {
    this.load();
    const list = this.older.get(name);
    if (!list) return undefined;
    for (let i = list.length - 1; i >= 0; i--) {
      const rec = list[i]!;
      if (!olderRecordMatches(rec, facts)) continue;
      this.older.delete(name);
      this.set(rec);
      return rec;
    }
    return undefined;
  }

  /** Is the current record of `name` (or its absence) on the stick for good? */
  isDurable(name: string): boolean {
    this.load();
    return !this.pending.has(name) && !this.unsyncedNames.has(name);
  }

  /**
   * May the stick hold a record of `name` (synced or not, current or earlier)? Then a change
   * of the file it fingerprints must not reach the stick before the record describing it.
   */
  onStick(name: string): boolean {
    this.load();
    return this.logged(name);
  }

  private logged(name: string): boolean {
    return this.records.has(name) ? !this.fresh.has(name) : this.gone.has(name);
  }

  delete(name: string): void {
    this.load();
    if (this.logged(name)) this.gone.add(name);
    this.fresh.delete(name);
    if (!this.records.delete(name) && this.active === null) return;
    this.pending.set(name, null);
    this.onChange(this);
  }

  /**
   * Removes a name's record for good, its earlier records too (check --repair's "forget"): a
   * tombstone alone would let the reader fall back to an earlier record that matches the file
   * (see fallback), so the log is rewritten without them.
   */
  forget(name: string): void {
    this.load();
    this.older.delete(name);
    // a tombstone would make the name's last record an earlier one: rewrite instead
    if (this.active !== null) this.needsCompaction = true;
    this.delete(name);
  }

  get dirty(): boolean {
    return this.pending.size > 0 || this.unsynced;
  }

  /**
   * The log slots that may be on the stick: once the log is read, its own and any damaged or
   * older one (junk); before, those the folder's listing showed (both if it was not listed).
   * Asking for a slot that is not there costs exfat-fuse a round trip.
   */
  private slotsOnStick(): Slot[] {
    const listed = this.presentSlots;
    return ([0, 1] as Slot[]).filter((s) =>
      this.loaded ? s === this.active || this.junk.has(s) : !listed || listed.has(META_SLOTS[s]),
    );
  }

  /** Deletes the log files, for a directory about to be removed. */
  removeFiles(): void {
    for (const slot of this.slotsOnStick()) this.lower.unlinkIfExists(this.slotPath(META_SLOTS[slot]));
    this.records.clear();
    this.pending.clear();
    this.active = null;
    this.junk.clear();
    this.unsynced = false;
    this.entryUnsynced = false;
    this.unsyncedNames.clear();
    this.older.clear();
    this.fresh.clear();
    this.gone.clear();
    this.goneAtLoad = 0;
  }

  /** Writes pending records; with `sync`, also makes them durable. */
  flush(sync: boolean): void {
    if (!this.loaded) return;
    if (this.pending.size === 0) {
      if (sync && this.unsynced && this.active !== null) {
        this.lower.append(this.slotPath(META_SLOTS[this.active]), Buffer.alloc(0), true);
        this.syncedEntry();
        this.unsynced = false;
        this.unsyncedNames.clear();
      }
      return;
    }
    if (this.active === null && this.records.size === 0) {
      this.pending.clear(); // only tombstones for a log that never existed
      return;
    }
    if (this.active === null || this.needsCompaction || this.appended > 2 * this.records.size + 256) {
      this.compact(sync);
      return;
    }
    let text = "";
    for (const [name, rec] of this.pending) text += rec ? recordLine(rec) : tombstoneLine(name);
    this.lower.append(this.slotPath(META_SLOTS[this.active]), Buffer.from(text, "utf8"), sync);
    if (sync) this.syncedEntry();
    this.appended += this.pending.size;
    for (const [name, rec] of this.pending) if (rec) this.fresh.delete(name);
    if (sync) this.unsyncedNames.clear();
    else for (const name of this.pending.keys()) this.unsyncedNames.add(name);
    this.pending.clear();
    this.unsynced = !sync;
  }

  private slotPath(slot: string): string {
    return this.dirPath() + "/" + slot;
  }

  private load(): void {
    this.used = true;
    if (this.loaded) return;
    this.loaded = true;
    let best: {
      slot: Slot;
      gen: number;
      records: Map<string, MetaRecord>;
      bad: number;
      appended: number;
      older: Map<string, MetaRecord[]>;
    } | null = null;
    const listed = this.presentSlots;
    this.presentSlots = null;
    for (const slot of [0, 1] as Slot[]) {
      if (listed && !listed.has(META_SLOTS[slot])) continue;
      const path = this.slotPath(META_SLOTS[slot]);
      let text: Buffer | null;
      try {
        text = this.lower.readSmall(path, MAX_LOG_BYTES);
      } catch (err) {
        if (hasCode(err, "ENOENT")) continue;
        if (hasCode(err, "ELOOP") || hasCode(err, "EISDIR") || hasCode(err, "EACCES")) {
          warnOnce(
            path,
            `cannot read metadata ${showPath(path)} (${String(err)}); its files show with defaults`,
          );
          this.junk.add(slot);
          continue;
        }
        throw err;
      }
      if (text === null) {
        warnOnce(
          path,
          `metadata ${showPath(path)} is larger than ${MAX_LOG_BYTES} bytes; ignored, files show with defaults`,
        );
        this.junk.add(slot);
        continue;
      }
      const log = parseLog(text);
      if (!log.complete) {
        if (text.length > 0) warnOnce(path, `metadata ${showPath(path)} is damaged or incomplete; ignored`);
        this.junk.add(slot);
        continue;
      }
      if (log.badLines > 0)
        warnOnce(path, `metadata ${showPath(path)}: ${log.badLines} damaged line(s) ignored`);
      if (best === null || log.gen > best.gen) {
        if (best) this.junk.add(best.slot);
        best = {
          slot,
          gen: log.gen,
          records: log.records,
          bad: log.badLines,
          appended: log.appended,
          older: log.older,
        };
      } else this.junk.add(slot);
    }
    if (best) {
      this.active = best.slot;
      this.gen = best.gen;
      this.records = best.records;
      this.appended = best.appended;
      this.older = best.older;
      for (const name of best.older.keys()) if (!best.records.has(name)) this.gone.add(name);
      this.goneAtLoad = this.gone.size;
      if (best.bad > 0) this.needsCompaction = true;
    }
    if (this.junk.size > 0) this.needsCompaction = true;
    this.onLoad(this);
  }

  private syncFolder(): void {
    this.lower.fsyncDir(this.dirPath());
    this.onFolderSynced();
  }

  /** After an fsync of the log: a first log's entry in its folder is made durable too. */
  private syncedEntry(): void {
    if (!this.entryUnsynced) return;
    this.syncFolder();
    this.entryUnsynced = false;
  }

  /**
   * Writes a fresh snapshot to the other slot, makes it durable, and only then removes the
   * old one: at every instant one complete log is on the stick. A folder's first log (no
   * slot on the stick, not even a damaged one) replaces nothing: unless `sync` asks, it is
   * written without an fsync, like an appended record, and the next sync makes it and its
   * entry durable. (git makes 256 new folders; each first log cost two fsyncs.)
   */
  private compact(sync = true): void {
    const durable = sync || this.active !== null || this.junk.size > 0 || this.older.size > 0;
    const target: Slot = this.active === 0 ? 1 : 0;
    const targetPath = this.slotPath(META_SLOTS[target]);
    // only junk (a damaged log, an older generation) is ever in the target slot; a try of this
    // compaction that failed after making the file leaves it there as junk too
    if (this.junk.has(target)) this.lower.unlinkIfExists(targetPath);
    this.junk.add(target);
    // earlier records not taken over yet: the snapshot keeps the one that matches the file
    for (const [name, list] of this.older) {
      const facts = this.lower.stat(this.slotPath(name));
      const cur = this.records.get(name);
      if (!facts || (cur && recordApplies(cur, facts))) continue;
      const match = [...list].reverse().find((r) => olderRecordMatches(r, facts));
      if (match) this.records.set(name, match);
    }
    this.older.clear();
    // drop records of files that vanished while the stick was elsewhere
    const present = this.present();
    for (const name of [...this.records.keys()]) {
      if (!this.written.has(name) && !present(name)) this.records.delete(name);
    }
    this.lower.writeNew(
      targetPath,
      Buffer.from(snapshotText(this.gen + 1, this.records.values()), "utf8"),
      durable,
    );
    if (durable) this.syncFolder();
    if (this.active !== null) this.lower.unlinkIfExists(this.slotPath(META_SLOTS[this.active]));
    for (const slot of this.junk)
      if (slot !== target) this.lower.unlinkIfExists(this.slotPath(META_SLOTS[slot]));
    this.junk.clear();
    this.active = target;
    this.gen += 1;
    this.appended = 0;
    this.needsCompaction = false;
    this.pending.clear();
    this.fresh.clear();
    this.gone.clear();
    this.goneAtLoad = 0;
    this.unsynced = !durable;
    this.entryUnsynced = !durable;
    this.unsyncedNames.clear();
    if (!durable) for (const name of this.records.keys()) this.unsyncedNames.add(name);
  }
}
