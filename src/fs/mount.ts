/**
 * A mount's whole life: check the stick, mount, serve, write everything out at the end.
 * Used by `pershome mount` (src/cli/) and by the login hook.
 */
import fs from "node:fs";
import v8 from "node:v8";
import { fuse, prefetchStats } from "../native/index.js";
import type { FuseSession } from "../native/types.js";
import { AREA_DIR, MARKER_FILE, checkMarker, makeMarker } from "../format/marker.js";
import { log } from "../log.js";
import { makeFilesystem } from "./filesystem.js";
import { Layer } from "./layer.js";
import { NodeLower } from "./lower.js";
import * as files from "./ops/files.js";
import { appendStateEvent, mountEvent, umountEvent } from "./state-log.js";
import { pershomeVersion } from "../version.js";

export interface MountOptions {
  /** the stick's pershome directory */
  lowerDir: string;
  mountpoint: string;
  uid: number;
  gid: number;
  allowOther: boolean;
  debug?: boolean;
  /** seconds the kernel may cache attributes and names (the layer is the only writer) */
  cacheTimeout?: number;
  /** let fusermount3 remove the mount if the daemon dies (for scratch mounts, not homes) */
  autoUnmount?: boolean;
  /** the longest the daemon polls for the next request before sleeping, in µs; 0: never */
  pollMicros?: number;
}

/**
 * Seconds the kernel may cache attributes and names. Long: while mounted only the layer changes
 * the stick, and the kernel drops what each request it sends changes (edits made on another
 * system happen while unmounted). docs/layer.md, "Kernel caching".
 */
export const DEFAULT_CACHE_TIMEOUT = 3600;

/**
 * How long (µs) the daemon may keep polling for the next request before it sleeps. Waking a
 * sleeping daemon cost half of each small request's time on the bench machine; polling for
 * this long caught nearly all of a busy program's next requests (docs/benchmarks.md, "Ninth
 * round"). The window adapts and shrinks to nothing on a mount used slowly.
 */
export const DEFAULT_POLL_MICROS = 200;

/** A problem the user can fix: the message says what happened and what to do. */
export class MountError extends Error {}

const FS_NAMES: Record<number, string> = {
  0x4d44: "FAT (vfat)",
  0x2011bab0: "exFAT",
  0x65735546: "FUSE (e.g. exfat-fuse)",
};

/** Checks the stick's pershome directory and writes the format marker if it has none. */
export function prepareLower(lowerDir: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(lowerDir);
  } catch {
    throw new MountError(
      `${lowerDir} does not exist. Create a "pershome" folder on the stick (or run "pershome init").`,
    );
  }
  if (st.isSymbolicLink())
    throw new MountError(`${lowerDir} is a symbolic link; give the stick's real pershome folder.`);
  if (!st.isDirectory()) throw new MountError(`${lowerDir} is not a folder.`);
  const area = `${lowerDir}/${AREA_DIR}`;
  const marker = `${area}/${MARKER_FILE}`;
  let text: Buffer | null = null;
  try {
    const ast = fs.lstatSync(area);
    if (!ast.isDirectory())
      throw new MountError(
        `${area} is not a folder; the stick looks damaged: run "pershome check --repair".`,
      );
    // A marker that is not a regular file (a folder, a fifo, a link another system left)
    // cannot be read or replaced: damaged, like one full of garbage. Never opened: a fifo
    // would block the mount, a link could lead off the stick.
    const mst = fs.lstatSync(marker, { throwIfNoEntry: false });
    if (mst && !mst.isFile()) {
      log(
        "warn",
        `${marker} is not a file; treating the stick as format 1 ("pershome check --repair" rewrites it)`,
      );
      return;
    }
    const fd = fs.openSync(marker, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    try {
      const buf = Buffer.alloc(4096);
      text = buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, 0));
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    if (err instanceof MountError) throw err;
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  if (text) {
    const check = checkMarker(text);
    if (!check.ok && check.reason === "newer") {
      throw new MountError(
        `This stick was prepared by a newer pershome (format ${check.version}). Update pershome on this computer to use it.`,
      );
    }
    if (!check.ok)
      log(
        "warn",
        `${marker} is damaged; treating the stick as format 1 ("pershome check --repair" rewrites it)`,
      );
    return;
  }
  try {
    fs.mkdirSync(area, { recursive: true });
    const fd = fs.openSync(marker, "wx");
    fs.writeSync(fd, makeMarker());
    fs.fsyncSync(fd);
    fs.closeSync(fd);
  } catch (err) {
    throw new MountError(
      `cannot prepare ${lowerDir} for pershome (${(err as NodeJS.ErrnoException).code ?? String(err)}): ` +
        'the stick may be read-only (check its lock switch) or full. Fix that, or run "pershome init".',
    );
  }
  log("info", `prepared ${lowerDir} for pershome (format marker written)`);
}

/** Mount options for the kernel: never setuid, never devices (docs/security in README). */
export function kernelOptions(o: MountOptions): string[] {
  const opts = [
    `fsname=${o.lowerDir.replace(/[\\,]/g, (c) => "\\" + c)}`,
    "subtype=pershome",
    "default_permissions",
    "nosuid",
    "nodev",
    "noatime",
  ];
  if (o.allowOther) opts.push("allow_other");
  // Off by default: over a home, a dead daemon's mount must fail loudly (ENOTCONN), not
  // vanish and let saves land silently on the machine's own disk underneath.
  if (o.autoUnmount) opts.push("auto_unmount");
  return opts;
}

export interface RunningMount {
  session: FuseSession;
  /** resolves when the mount has ended and everything is written */
  done: Promise<void>;
  unmount(): void;
}

export function startMount(given: MountOptions): RunningMount {
  // The daemon makes a little short-lived garbage per request: V8's young generation would grow
  // to 3 x 16 MiB under load and stay committed. Keeping it at its first size costs a few more,
  // smaller scavenges and keeps the daemon's RSS down (docs/benchmarks.md, "Profile findings").
  // (Unlike --max-semi-space-size, this flag takes effect after startup.)
  v8.setFlagsFromString("--semi-space-growth-factor=1");
  // Likewise the old generation: V8 lets it grow to up to 4x what survived the last full GC
  // before the next one when GC looks cheap. Holding that to 1.2x (or V8's smallest step, 8 MiB)
  // keeps the peak near what is live: 12-14 MiB less after listing 100,000 files, for a few per
  // cent of CPU at most (docs/benchmarks.md, "Sixth round: memory"). Read at each full GC, so it
  // takes effect after startup too.
  v8.setFlagsFromString("--heap-growing-percent=20");
  // the stick's folder by its real path: how the mount is recognised later (fsname)
  let lowerDir = given.lowerDir;
  try {
    lowerDir = fs.realpathSync(lowerDir);
  } catch {
    // prepareLower says what is wrong with it
  }
  const o = { ...given, lowerDir };
  prepareLower(o.lowerDir);
  appendStateEvent(o.lowerDir, mountEvent(pershomeVersion()));
  const fsType = FS_NAMES[fs.statfsSync(o.lowerDir).type] ?? "not FAT";
  log("info", `stick folder ${o.lowerDir} (${fsType}), mounting on ${o.mountpoint}`);
  const timeout = o.cacheTimeout ?? DEFAULT_CACHE_TIMEOUT;
  const lower = new NodeLower(Buffer.from(o.lowerDir).toString("latin1"));
  const layer = new Layer(lower, {
    uid: o.uid,
    gid: o.gid,
    attrTimeout: timeout,
    entryTimeout: timeout,
    // for tests: a small budget drops and reads again idle folders' logs often (Layer.trimMetas)
    metaBudget: Number(process.env["PERSHOME_META_BUDGET"]) || undefined,
  });
  const filesystem = makeFilesystem(layer, fuse);
  // PERSHOME_FUSE_COUNTS=1: log how many requests of each kind the kernel sent, at unmount and
  // on SIGUSR2 (since the last report), to count round trips per workload, and how the polling
  // before sleeping fared (docs/benchmarks.md).
  const countRequests = Boolean(process.env["PERSHOME_FUSE_COUNTS"]);
  let lastCounts: Record<string, number> = {};
  const reportCounts = (): void => {
    const counts = fuse.requestCounts(session);
    const delta: Record<string, number> = {};
    for (const [k, v] of Object.entries(counts)) if (v !== lastCounts[k]) delta[k] = v - (lastCounts[k] ?? 0);
    lastCounts = counts;
    const mb = (n: number): string => (n / 2 ** 20).toFixed(1);
    const m = process.memoryUsage();
    log(
      "info",
      `FUSE requests: ${JSON.stringify(delta)}; inodes ${layer.inodes.size}; ` +
        `folder logs dropped ${layer.metaDrops}; MiB rss ${mb(m.rss)} ` +
        `heap ${mb(m.heapUsed)}/${mb(m.heapTotal)} external ${mb(m.external)}; ` +
        `polling so far ${JSON.stringify(fuse.pollStats(session))}; ` +
        `read ahead so far ${JSON.stringify(prefetchStats())}`,
    );
  };
  if (countRequests) process.on("SIGUSR2", reportCounts);
  // Records not yet written reach the stick within 2 s; fsync writes them at once.
  const timer = setInterval(() => layer.flushAll(false), 2000);
  timer.unref();

  let resolveDone: () => void = () => {};
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  const finish = (err?: Error): void => {
    clearInterval(timer);
    if (err) log("error", `the mount ended with an error: ${err.message}`);
    lower.stopPrefetching(); // nothing is read ahead for a mount that ends
    for (const h of [...filesystem.files.values()]) {
      try {
        files.release(layer, h);
      } catch (e) {
        log("warn", `closing an open file at unmount: ${String(e)}`);
      }
    }
    layer.flushAll(true);
    try {
      lower.waitForCloses(); // before the line that says all is written, and the stick's unmount
    } catch (e) {
      log("warn", `closing a file on the stick failed: ${String(e)}`);
    }
    if (countRequests) {
      process.off("SIGUSR2", reportCounts);
      reportCounts();
    }
    // Only a mount that wrote everything out ends cleanly (status reads this line).
    if (!err) appendStateEvent(o.lowerDir, umountEvent());
    log("info", `unmounted ${o.mountpoint}; everything is written to the stick`);
    resolveDone();
  };
  let session: FuseSession;
  try {
    session = fuse.mount(
      o.mountpoint,
      filesystem.ops,
      // No flush op: the kernel stops sending FLUSH (writes are synchronous, nothing to do on close).
      {
        options: kernelOptions(o),
        debug: o.debug ?? false,
        init: { xattrPrefix: "user.", pollMicros: o.pollMicros ?? DEFAULT_POLL_MICROS },
      },
      finish,
    );
  } catch (err) {
    clearInterval(timer);
    throw new MountError(`could not mount on ${o.mountpoint}: ${(err as Error).message}`);
  }
  return { session, done, unmount: () => session.unmount() };
}
