// The one fixture most tests use: a lower of a given kind with the layer mounted on it for the
// whole describe block, a fresh directory per test, remount on demand, and teardown that always
// runs. The daemon's stderr is printed when a test fails.
//
//   describe.each(lowerKinds())("names on %s", (kind) => {
//     const t = useLayer(kind, "names");
//     it("…", async () => { const d = await t.dir("case"); … await t.remount(); … });
//   });

import { chmod, mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach } from "vitest";
import { createLower, type Lower, type LowerKind } from "./lower.js";
import { SLOW, mountLayer, type Layer, type MountOptions, type StopHow, type StopResult } from "./mount.js";
import { run, tail } from "./run.js";

export interface LayerFixture {
  readonly kind: LowerKind;
  readonly lower: Lower;
  /** the running layer (throws when it is not mounted) */
  readonly layer: Layer;
  readonly mnt: string;
  /** a path inside the mount */
  p(...parts: string[]): string;
  /** a path inside the lower (stick) directory */
  low(...parts: string[]): string;
  /** A new, empty directory in the mount for one test; returns its name (not path). */
  dir(tag: string): Promise<string>;
  mounted(): boolean;
  /** Mounts the layer (after unmount()); options default to the fixture's. */
  mount(opts?: MountOptions): Promise<Layer>;
  /** Unmounts the layer; the lower stays attached. */
  unmount(how?: StopHow): Promise<StopResult>;
  /** Unmounts, takes the stick out and puts it back (exfat, vfat), mounts again. */
  remount(opts?: MountOptions): Promise<Layer>;
  /** Runs `edit` on the lower while the layer is down, then mounts again. */
  whileUnmounted<T>(edit: () => Promise<T>): Promise<T>;
}

export interface FixtureOptions {
  mount?: MountOptions;
  sizeMb?: number;
  /** do not mount in beforeAll (the test mounts itself) */
  noMount?: boolean;
}

export function useLayer(kind: LowerKind, label: string, fo: FixtureOptions = {}): LayerFixture {
  let lower: Lower | undefined;
  let layer: Layer | undefined;
  let mnt: string | undefined;
  let seq = 0;
  const dead: string[] = [];

  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`fixture ${label}/${kind}: ${what} is not set up`);
    return v;
  };

  const f: LayerFixture = {
    kind,
    get lower() {
      return need(lower, "the lower");
    },
    get layer() {
      return need(layer, "the layer (not mounted)");
    },
    get mnt() {
      return need(mnt, "the mountpoint");
    },
    p: (...parts) => join(f.mnt, ...parts),
    low: (...parts) => join(f.lower.dir, ...parts),
    async dir(tag) {
      const name = `${tag}-${++seq}`;
      await mkdir(f.p(name));
      return name;
    },
    mounted: () => layer !== undefined && layer.alive(),
    async mount(opts) {
      if (layer?.alive()) throw new Error("already mounted");
      const l = need(lower, "the lower");
      if (!l.attached()) await l.attach();
      layer = await mountLayer(l.dir, f.mnt, opts ?? fo.mount ?? {});
      return layer;
    },
    async unmount(how) {
      const l = need(layer, "the layer");
      const r = await l.stop(how);
      if (r.code !== 0 || r.forced) dead.push(`unmount: daemon ${fmt(r)}\n${tail(l.stderr(), 2000)}`);
      layer = undefined;
      return r;
    },
    async remount(opts) {
      if (layer) await f.unmount();
      await f.lower.detach();
      await f.lower.attach();
      return f.mount(opts);
    },
    async whileUnmounted(edit) {
      if (layer) await f.unmount();
      try {
        return await edit();
      } finally {
        await f.mount();
      }
    },
  };

  beforeAll(async () => {
    lower = await createLower(kind, label, fo.sizeMb !== undefined ? { sizeMb: fo.sizeMb } : {});
    mnt = join(lower.work, "mnt");
    await mkdir(mnt, { mode: 0o755 });
    await chmod(mnt, 0o755);
    if (!fo.noMount) await f.mount();
  }, 300_000 * SLOW);

  beforeEach((ctx) => {
    ctx.onTestFailed(() => {
      const l = layer;
      const parts = [`[${label}/${kind}] mount ${mnt ?? "?"}`];
      if (l)
        parts.push(
          `daemon ${l.alive() ? "alive" : "ended " + fmt(l.exitInfo())}; stderr:\n${tail(l.stderr(), 6000)}`,
        );
      if (dead.length) parts.push(dead.join("\n"));
      console.error(parts.join("\n"));
    });
  });

  // A test that left the layer down, dead or hung does not take the next one with it.
  beforeEach(async () => {
    if (fo.noMount || !lower) return;
    if (layer && !layer.alive()) {
      dead.push(`daemon died: ${fmt(layer.exitInfo())}\n${tail(layer.stderr(), 2000)}`);
      await layer.kill9();
      layer = undefined;
    }
    if (layer && !(await responsive(layer.mnt))) {
      dead.push(`daemon hung (stat of the mount root took over 15 s); killed\n${tail(layer.stderr(), 2000)}`);
      await layer.kill9();
      layer = undefined;
    }
    if (!layer) await f.mount();
  }, 180_000 * SLOW);

  afterAll(async () => {
    try {
      if (layer) await layer.stop();
    } finally {
      layer = undefined;
      if (lower) await lower.dispose();
      lower = undefined;
    }
  }, 300_000 * SLOW);

  return f;
}

function fmt(e: { code: number | null; signal: string | null } | undefined): string {
  if (!e) return "running";
  return e.signal ? `signal ${e.signal}` : `exit ${String(e.code)}`;
}

/** The mount answers a stat of its root within 15 s (checked from a child process, which can be killed). */
async function responsive(mnt: string): Promise<boolean> {
  const r = await run("stat", ["-c", "%i", mnt], { timeoutMs: 15_000 * SLOW });
  return r.code === 0;
}

/** Raw names (bytes) in a directory. */
export async function rawNames(dir: string): Promise<Buffer[]> {
  return (await readdir(dir, { encoding: "buffer" })).sort(Buffer.compare);
}
