import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { buildLabImages, type LabImages } from "../../images/index.js";
import { Machine } from "./machine.js";
import { LabNetwork } from "./network.js";
import { LtspServer } from "./server.js";
import { Stick, type StickKind } from "./stick.js";
import { atTeardown } from "./teardown.js";

// The emulated LTSP lab: a server container and netbooted thin clients on a private network,
// plus virtual sticks. `Lab.up()` brings it all up (images are built or taken from the cache);
// `lab.reset()` puts every client back to the state snapshotted right after boot, in seconds.

export interface LabOptions {
  /** Client names, e.g. ["college", "library"]. */
  clients: string[];
  /** Where console logs go (kept as artifacts); default reports/lab/<date>. */
  logDir?: string;
  /** Snapshot each client after boot so reset() is fast (default true). */
  snapshots?: boolean;
  memoryMb?: number;
  /** Runs on each client after its first boot, before the snapshot (the admin's setup). */
  provision?: (m: Machine) => Promise<void>;
  log?: (line: string) => void;
}

export class Lab {
  readonly clients = new Map<string, Machine>();
  private readonly sticks: Stick[] = [];
  private snapshotFiles = new Map<string, string>();
  private readonly removeWorkDir: () => void;

  private constructor(
    readonly images: LabImages,
    readonly network: LabNetwork,
    readonly server: LtspServer,
    readonly workDir: string,
    readonly logDir: string,
    private readonly log: (line: string) => void,
  ) {
    this.removeWorkDir = atTeardown("lab work dir", () => rmSync(workDir, { recursive: true, force: true }));
  }

  static async up(opts: LabOptions): Promise<Lab> {
    const log = opts.log ?? ((l: string) => process.stderr.write(`lab: ${l}\n`));
    const logDir = resolve(
      opts.logDir ?? join("reports", "lab", new Date().toISOString().replace(/[:.]/g, "-")),
    );
    mkdirSync(logDir, { recursive: true });
    // Unix socket paths must stay short: sockets and snapshots live under /tmp.
    const workDir = mkdtempSync("/tmp/pershome-lab-");
    const t0 = Date.now();
    const images = await buildLabImages({ log });
    log(
      `images ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (server ${images.keys.server}, base ${images.keys.base}, app ${images.keys.app})`,
    );
    const network = await LabNetwork.create();
    const server = await LtspServer.start({
      root: images.serverRoot,
      bootDir: images.bootDir,
      network,
      consoleLog: join(logDir, "server.console.log"),
      log,
    });
    const lab = new Lab(images, network, server, workDir, logDir, log);
    opts.clients.forEach((name, i) => {
      lab.clients.set(
        name,
        new Machine({ name, index: 0x11 + i, network, dir: workDir, logDir, memoryMb: opts.memoryMb, log }),
      );
    });
    await Promise.all(
      [...lab.clients.values()].map(async (m) => {
        await m.boot();
        await opts.provision?.(m);
      }),
    );
    if (opts.snapshots ?? true) await lab.snapshotAll();
    log(`lab up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return lab;
  }

  client(name: string): Machine {
    const m = this.clients.get(name);
    if (!m)
      throw new Error(`no client named ${name} in this lab (have: ${[...this.clients.keys()].join(", ")})`);
    return m;
  }

  /** A fresh virtual stick (image under the lab's work dir). */
  async newStick(
    name: string,
    kind: StickKind,
    opts: { sizeMb?: number; label?: string } = {},
  ): Promise<Stick> {
    const s = await Stick.make(this.workDir, name, kind, opts);
    this.sticks.push(s);
    return s;
  }

  /** Snapshots every client as it is now: reset() returns to this point. */
  async snapshotAll(): Promise<void> {
    const t0 = Date.now();
    for (const [name, m] of this.clients) {
      const file = join(this.workDir, `${name}.snapshot.zst`);
      await m.snapshot(file);
      this.snapshotFiles.set(name, file);
    }
    this.log(`snapshots taken in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }

  /** Every client back to its snapshot (a clean, just-booted machine); all sticks unplugged. */
  async reset(): Promise<void> {
    for (const s of this.sticks) s.detached();
    await Promise.all(
      [...this.clients].map(async ([name, m]) => {
        const file = this.snapshotFiles.get(name);
        if (file) await m.restore(file);
        else await m.reboot();
      }),
    );
  }

  /** Stops everything the lab started (also done automatically when the process ends). */
  down(): void {
    for (const m of this.clients.values()) m.stop();
    this.server.stop();
    this.network.destroy();
    this.removeWorkDir();
  }
}
