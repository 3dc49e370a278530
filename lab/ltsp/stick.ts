import { mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import {
  fsckExfat,
  fsckFat,
  type FsckResult,
  makeExfatStick,
  makeFat32Stick,
  mdirNames,
  mmd,
  mountExfatOnHost,
  unmountExfat,
} from "../sticks/index.js";
import { runTool } from "../sticks/run.js";
import { LabError } from "./errors.js";
import type { Machine } from "./machine.js";

// A virtual USB stick: an image file on the host, plugged into a client's xHCI controller as USB
// mass storage through QMP and pulled again (also in the middle of a write). Between clients the
// stick is "carried": the same image file is plugged elsewhere. The host can look inside with
// mtools (FAT32) or exfat-fuse (exFAT) while no client holds it.

export type StickKind = "fat32" | "exfat";

export class Stick {
  private plugged: Machine | undefined;
  private static count = 0;
  private readonly id: string;

  private constructor(
    readonly name: string,
    readonly image: string,
    readonly kind: StickKind,
  ) {
    this.id = `stick${++Stick.count}`;
  }

  /** A freshly formatted stick, as bought (`label` defaults to the name, upper-cased as FAT does). */
  static async make(
    dir: string,
    name: string,
    kind: StickKind,
    opts: { sizeMb?: number; label?: string } = {},
  ): Promise<Stick> {
    const image = join(dir, `${name}.${kind}.img`);
    const label = (opts.label ?? name).toUpperCase().slice(0, kind === "fat32" ? 11 : 15);
    if (kind === "fat32") await makeFat32Stick(image, opts.sizeMb ?? 128, label);
    else await makeExfatStick(image, opts.sizeMb ?? 128, label);
    return new Stick(name, image, kind);
  }

  get pluggedInto(): Machine | undefined {
    return this.plugged;
  }

  /** The guest's path of this stick's disk once plugged (udev's by-id link carries our serial). */
  get guestDevice(): string {
    return `/dev/disk/by-id/usb-QEMU_QEMU_HARDDISK_${this.serial}-0:0`;
  }

  private get serial(): string {
    return `pershome-${this.name}`;
  }

  /** Plugs the stick into `machine` and waits until its kernel has the disk. */
  async plugInto(machine: Machine, timeoutMs = 60_000): Promise<void> {
    if (this.plugged)
      throw new LabError(`stick ${this.name} is still plugged into ${this.plugged.name}: pull it first`);
    const qmp = machine.qmp();
    await qmp.execute("blockdev-add", {
      "node-name": this.id,
      driver: "raw",
      file: { driver: "file", filename: this.image },
    });
    try {
      await qmp.execute("device_add", {
        driver: "usb-storage",
        id: this.id,
        drive: this.id,
        bus: "xhci.0",
        removable: true,
        serial: this.serial,
      });
    } catch (e) {
      await qmp.execute("blockdev-del", { "node-name": this.id }).catch(() => undefined);
      throw e;
    }
    this.plugged = machine;
    await machine.waitUntilSucceeds(`test -b ${this.guestDevice}`, timeoutMs);
  }

  /**
   * Pulls the stick out, whatever the client is doing: nothing more reaches the image. (QEMU keeps
   * no cache of its own for a raw image, so the file holds exactly what the guest had written.)
   */
  async pull(): Promise<void> {
    const machine = this.plugged;
    if (!machine) return;
    const qmp = machine.qmp();
    const mark = qmp.eventMark();
    await qmp.execute("device_del", { id: this.id });
    await qmp.waitForEvent("DEVICE_DELETED", (e) => e.data?.["device"] === this.id, 30_000, mark);
    await qmp.execute("blockdev-del", { "node-name": this.id });
    this.plugged = undefined;
  }

  /** Forget a plug whose machine was killed or restored (QEMU went away with the device). */
  detached(): void {
    this.plugged = undefined;
  }

  private requireOut(what: string): void {
    if (this.plugged)
      throw new LabError(`stick ${this.name}: pull it from ${this.plugged.name} before ${what}`);
  }

  /** Names in a folder of the stick, as any computer's FAT driver shows them (read on the host). */
  async list(path = "/"): Promise<string[]> {
    this.requireOut("looking inside it");
    if (this.kind === "fat32") return mdirNames(this.image, path);
    return this.withExfat((root) => readdirSync(join(root, path)));
  }

  /** Creates a folder on the stick from the host (e.g. the bare `/pershome` a student makes on Windows). */
  async mkdir(path: string): Promise<void> {
    this.requireOut("writing to it");
    if (this.kind === "fat32") return mmd(this.image, path);
    await this.withExfat((root) => mkdirSync(join(root, path)));
  }

  /** Lets the filesystem checker repair what it can (as a user would with a disk check). */
  async repair(): Promise<FsckResult> {
    this.requireOut("repairing it");
    const r = await runTool(this.kind === "fat32" ? "fsck.fat" : "fsck.exfat", [
      this.kind === "fat32" ? "-a" : "-y",
      this.image,
    ]);
    return {
      clean: r.exitCode === 0 || r.exitCode === 1,
      exitCode: r.exitCode,
      output: (r.stdout + r.stderr).trim(),
    };
  }

  async fsck(): Promise<FsckResult> {
    this.requireOut("checking it");
    return this.kind === "fat32" ? fsckFat(this.image) : fsckExfat(this.image);
  }

  private async withExfat<T>(f: (root: string) => T | Promise<T>): Promise<T> {
    const mnt = `${this.image}.mnt`;
    const m = await mountExfatOnHost(this.image, mnt, { uid: 0, gid: 0 });
    try {
      return await f(mnt);
    } finally {
      await unmountExfat(m);
    }
  }
}
