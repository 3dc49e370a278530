/**
 * Where the lab's long-running checkers (fsx, torture) run: a stick of some kind with a live
 * `pershome mount` on it, which can be unmounted, pulled and plugged again.
 *
 *  plain  a temporary directory on the host's disk as the stick
 *  exfat  an exFAT image on a loop device through mount.exfat-fuse (lab/sticks)
 *  vfat   a FAT32 device under the kernel's vfat driver (inside the micro-VM only)
 *  raw    no layer at all: the checker runs on a plain directory (checks the checker)
 */
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { makeExfatStick } from "../sticks/index.js";

export type TargetKind = "plain" | "exfat" | "vfat" | "raw";
export const TARGET_KINDS: readonly TargetKind[] = ["plain", "exfat", "vfat", "raw"];

export const REPO = fileURLToPath(new URL("../../../", import.meta.url)).replace(/\/$/, "");
export const CLI = path.join(REPO, "dist/src/cli/main.js");

/** A `--vfat-options` value as the mount options it adds: a comma list, or `none` for none. */
export function vfatOptionsArg(value: string): string[] {
  return value === "none" ? [] : value.split(",").filter(Boolean);
}

export interface TargetOptions {
  kind: TargetKind;
  /** scratch directory (default: a fresh one under the OS temp dir) */
  work?: string;
  /** exFAT image size */
  sizeMb?: number;
  /** vfat: the FAT32 block device (default /dev/sda, the micro-VM's first stick) */
  device?: string;
  /** keep the scratch directory */
  keep?: boolean;
  /** extra arguments to `pershome mount` */
  mountArgs?: string[];
  /** vfat: more mount options, e.g. ["flush"] (the login hook's: src/login/stick-mount.ts) */
  vfatOptions?: string[];
}

const sh = (cmd: string, args: string[]): { code: number; out: string } => {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 120_000 });
  return { code: r.status ?? -1, out: `${r.stdout ?? ""}${r.stderr ?? ""}${r.error ? r.error.message : ""}` };
};
const must = (cmd: string, args: string[]): string => {
  const r = sh(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.code}): ${r.out.trim()}`);
  return r.out;
};
const sleepMs = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Is something mounted at `p` (an absolute path with no links in it)? No stat: a dead FUSE mount answers ENOTCONN. */
function isMounted(p: string): boolean {
  return fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .some((l) => l.split(" ")[4] === p);
}

function pidAlive(pid: number): boolean {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return st.slice(st.lastIndexOf(")") + 2, st.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** The exfat-fuse process serving `mountpoint` from `loop`. */
function exfatPid(loop: string, mountpoint: string): number | undefined {
  for (const ent of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${ent}/cmdline`, "utf8").split("\0");
      if (argv.includes(loop) && argv.includes(mountpoint) && argv.some((x) => x.includes("exfat")))
        return Number(ent);
    } catch {
      /* gone */
    }
  }
  return undefined;
}

export class Target {
  readonly kind: TargetKind;
  readonly work: string;
  /** the stick's root (holds `pershome`) */
  readonly root: string;
  /** the stick's pershome directory (the layer's lower) */
  readonly lowerDir: string;
  /** where the checker works: the layer's mountpoint (or the raw directory) */
  readonly mnt: string;
  readonly image: string | undefined;
  private loop: string | undefined;
  private daemon: ChildProcess | undefined;
  private daemonErr = "";
  private stickAttached = false;

  constructor(private readonly o: TargetOptions) {
    this.kind = o.kind;
    this.work = o.work ?? fs.mkdtempSync(path.join(os.tmpdir(), `pershome-${o.kind}-`));
    fs.mkdirSync(this.work, { recursive: true });
    fs.chmodSync(this.work, 0o755);
    this.root = path.join(this.work, "stick");
    this.lowerDir = path.join(this.root, "pershome");
    this.mnt = o.kind === "raw" ? this.lowerDir : path.join(this.work, "mnt");
    this.image =
      o.kind === "exfat"
        ? path.join(this.work, "stick.img")
        : o.kind === "vfat"
          ? (o.device ?? "/dev/sda")
          : undefined;
  }

  /** Makes the stick (a fresh image for exfat; formats nothing for vfat) and mounts everything. */
  async create(): Promise<void> {
    fs.mkdirSync(this.root, { recursive: true });
    if (this.kind === "exfat") await makeExfatStick(this.image!, this.o.sizeMb ?? 256);
    this.attach();
    fs.mkdirSync(this.lowerDir, { recursive: true });
    if (this.kind !== "raw") fs.mkdirSync(this.mnt, { recursive: true });
    await this.mount();
  }

  /** Plugs the stick in (mounts its filesystem at `root`). */
  attach(): void {
    if (this.stickAttached) return;
    if (this.kind === "exfat") {
      this.loop = must("losetup", ["-f", "--show", this.image!]).trim();
      must("mount.exfat-fuse", ["-o", "nosuid,nodev,uid=0,gid=0,umask=022", this.loop, this.root]);
    } else if (this.kind === "vfat") {
      const opts = ["utf8", "shortname=mixed", "uid=0", "gid=0", ...(this.o.vfatOptions ?? [])];
      must("mount", ["-t", "vfat", "-o", opts.join(","), this.image!, this.root]);
    }
    this.stickAttached = true;
  }

  /** Unplugs the stick cleanly (its driver writes everything out). */
  detach(): void {
    if (!this.stickAttached) return;
    this.stickAttached = false;
    if (this.kind === "exfat") {
      must("umount", [this.root]);
      must("losetup", ["-d", this.loop!]);
      this.loop = undefined;
    } else if (this.kind === "vfat") {
      must("umount", [this.root]);
    }
  }

  /** The stick's driver process, if it is one (exfat-fuse). */
  driverPid(): number | undefined {
    return this.kind === "exfat" && this.loop ? exfatPid(this.loop, this.root) : undefined;
  }

  daemonPid(): number | undefined {
    return this.daemon?.pid;
  }

  stderr(): string {
    return this.daemonErr;
  }

  async mount(): Promise<void> {
    if (this.kind === "raw") return;
    if (this.daemon) throw new Error("already mounted");
    this.attach();
    const child = spawn(
      process.execPath,
      [CLI, "mount", this.lowerDir, this.mnt, "--foreground", ...(this.o.mountArgs ?? [])],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    this.daemon = child;
    this.daemonErr = "";
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      this.daemonErr = (this.daemonErr + d).slice(-200_000);
    });
    const deadline = Date.now() + 120_000;
    while (!out.includes("pershome: ready")) {
      if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
        this.daemon = undefined;
        child.kill("SIGKILL");
        throw new Error(`pershome mount failed: ${this.daemonErr.slice(-3000)}`);
      }
      await sleepMs(20);
    }
  }

  /** `pershome umount` and wait for the daemon to end (it writes everything out first). */
  async unmount(): Promise<void> {
    const d = this.daemon;
    if (!d) return;
    // Not spawnSync: `pershome umount` waits for the daemon to end, and the daemon is our child,
    // which stays a zombie (alive to it) until this event loop reaps it.
    const r = await new Promise<{ code: number; out: string }>((res) =>
      execFile(
        process.execPath,
        [
          CLI,
          "umount",
          this.mnt,
          "--timeout",
          String(Number(process.env.PERSHOME_FSX_UMOUNT_TIMEOUT ?? 120)),
        ],
        (err, stdout, stderr) =>
          res({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, out: stdout + stderr }),
      ),
    );
    if (r.code !== 0) throw new Error(`pershome umount: ${r.out}`);
    const deadline = Date.now() + 120_000;
    while (d.exitCode === null && d.signalCode === null && Date.now() < deadline) await sleepMs(20);
    this.daemon = undefined;
    if (d.exitCode !== 0)
      throw new Error(`the daemon ended with ${d.exitCode ?? d.signalCode}: ${this.daemonErr.slice(-3000)}`);
  }

  /** Unmount, unplug, plug, mount: a clean logout and login. */
  async remount(): Promise<void> {
    await this.unmount();
    this.detach();
    this.attach();
    await this.mount();
  }

  /**
   * The pull: SIGKILL the layer and the stick's driver at the same instant, then clear away the
   * dead mounts and the loop device. Returns the pids killed. `keepStick`: only the layer dies
   * (a kernel driver such as vfat lives on), its dead mount is cleared and the stick stays.
   */
  async crash(opts: { keepStick?: boolean } = {}): Promise<number[]> {
    const killed: number[] = [];
    const drv = opts.keepStick ? undefined : this.driverPid();
    for (const pid of [drv, this.daemon?.pid]) {
      if (!pid) continue;
      try {
        process.kill(pid, "SIGKILL");
        killed.push(pid);
      } catch {
        /* already gone */
      }
    }
    for (const pid of killed) {
      const deadline = Date.now() + 10_000;
      while (pidAlive(pid) && Date.now() < deadline) await sleepMs(10);
    }
    this.daemon = undefined;
    if (this.kind !== "raw" && isMounted(this.mnt)) sh("umount", ["-l", this.mnt]);
    if (this.stickAttached && !opts.keepStick) {
      this.stickAttached = false;
      if (isMounted(this.root)) sh("umount", ["-l", this.root]);
      if (this.loop) {
        const deadline = Date.now() + 10_000;
        while (sh("losetup", ["-d", this.loop]).code !== 0 && Date.now() < deadline) await sleepMs(100);
        this.loop = undefined;
      }
    }
    return killed;
  }

  /** Everything down, whatever state it is in; the scratch directory removed unless kept. */
  async dispose(): Promise<void> {
    try {
      if (this.daemon) await this.unmount().catch(() => this.crash());
      if (this.stickAttached) {
        try {
          this.detach();
        } catch {
          await this.crash();
        }
      }
    } finally {
      // a dead FUSE mount left behind would make the removal fail (ENOTCONN)
      for (const m of [this.mnt, this.root]) if (this.kind !== "raw" && isMounted(m)) sh("umount", ["-l", m]);
      if (this.loop) sh("losetup", ["-d", this.loop]);
      if (!this.o.keep && !this.o.work) fs.rmSync(this.work, { recursive: true, force: true });
    }
  }
}
