// The candidates: the lower alone (the floor), bindfs (C FUSE passthrough), posixovl, pershome.
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { sh, sleep } from "./sh.js";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const PERSHOME_CLI = path.join(ROOT, "dist/src/cli/main.js");

export type CandidateName = "floor" | "bindfs" | "posixovl" | "pershome";
export const CANDIDATES: CandidateName[] = ["floor", "bindfs", "posixovl", "pershome"];

export interface Mounted {
  /** Where workloads run. */
  dir: string;
  /** The daemon's pid when known (pershome). */
  pid?: number;
  /**
   * pershome: the FUSE requests the kernel sent it since the last call (or the mount), by
   * opcode; the daemon reports them on SIGUSR2 (PERSHOME_FUSE_COUNTS, src/fs/mount.ts).
   */
  requests?(): Promise<Record<string, number>>;
  unmount(): Promise<void>;
}

export interface MountOptions {
  /** A file (relative to the mount) whose first successful stat means "mounted". */
  probe?: string;
  /** Directory for `node --cpu-prof` output (pershome only). */
  cpuProfDir?: string;
}

/** Waits until `file` can be stat'ed (through a mount that is coming up). */
async function waitStat(file: string, what: string, timeoutMs = 60_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    try {
      fs.statSync(file);
      return;
    } catch {
      if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: ${file} not visible after ${timeoutMs} ms`);
      await sleep(2);
    }
  }
}

async function isMountpoint(dir: string): Promise<boolean> {
  return (await sh(`mountpoint -q '${dir}'`)).code === 0;
}

async function umount(dir: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if (!(await isMountpoint(dir))) return;
    const r = await sh(`umount '${dir}'`);
    if (r.code === 0) return;
    await sleep(100);
  }
  await sh(`umount -l '${dir}'`);
}

/** Mounts a daemonising FUSE tool, then waits for the probe (or the mountpoint). */
async function mountDaemon(cmd: string, mnt: string, opts: MountOptions, name: string): Promise<Mounted> {
  const r = await sh(cmd);
  if (r.code !== 0) throw new Error(`${name}: ${cmd}: ${r.err.trim()}`);
  if (opts.probe) await waitStat(path.join(mnt, opts.probe), name);
  else
    for (let i = 0; !(await isMountpoint(mnt)); i++) {
      if (i > 2000) throw new Error(`${name}: ${mnt} never became a mountpoint`);
      await sleep(5);
    }
  return { dir: mnt, unmount: () => umount(mnt) };
}

export async function mountCandidate(
  c: CandidateName,
  lower: string,
  mnt: string,
  opts: MountOptions = {},
): Promise<Mounted> {
  fs.mkdirSync(mnt, { recursive: true });
  switch (c) {
    case "floor":
      return { dir: lower, unmount: async () => {} };
    case "bindfs":
      // -s: single-threaded; on 2 cores it beat the multithreaded default (fuse-binding.md, and
      // re-measured for docs/benchmarks.md).
      return mountDaemon(`bindfs -s '${lower}' '${mnt}'`, mnt, opts, "bindfs");
    case "posixovl":
      // -F: no permission checks beyond the lower's (as root); -S: the source directory.
      return mountDaemon(`mount.posixovl -F -S '${lower}' '${mnt}'`, mnt, opts, "posixovl");
    case "pershome":
      return mountPershome(lower, mnt, opts);
  }
}

/** Mounts pershome; `cli` may be another build's (bench/ab.ts compares two builds). */
export async function mountPershome(
  lower: string,
  mnt: string,
  opts: MountOptions,
  cli = PERSHOME_CLI,
): Promise<Mounted> {
  const nodeArgs = opts.cpuProfDir ? ["--cpu-prof", `--cpu-prof-dir=${opts.cpuProfDir}`] : [];
  const child: ChildProcess = spawn(
    process.execPath,
    [...nodeArgs, cli, "mount", lower, mnt, "--foreground"],
    // the counts are kept anyway (in the addon); the variable only lets SIGUSR2 report them
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PERSHOME_FUSE_COUNTS: "1" } },
  );
  let log = "";
  let ready = false;
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  child.stdout!.on("data", (d: Buffer) => {
    log += d.toString();
    if (log.includes("pershome: ready")) ready = true;
  });
  child.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  let dead = false;
  void exited.then(() => (dead = true));
  const t0 = Date.now();
  if (opts.probe) {
    await Promise.race([
      waitStat(path.join(mnt, opts.probe), "pershome"),
      exited.then(() => {
        throw new Error(`pershome exited before mounting: ${log}`);
      }),
    ]);
  } else {
    while (!ready) {
      if (dead) throw new Error(`pershome exited before mounting: ${log}`);
      if (Date.now() - t0 > 60_000) throw new Error(`pershome not ready after 60 s: ${log}`);
      await sleep(2);
    }
  }
  const REPORT = "FUSE requests: ";
  const reports = (): number => log.split(REPORT).length - 1;
  return {
    dir: mnt,
    pid: child.pid!,
    requests: async () => {
      const n = reports();
      child.kill("SIGUSR2");
      for (const t0 = Date.now(); reports() === n; await sleep(2))
        if (dead || Date.now() - t0 > 10_000)
          throw new Error(`pershome did not report its requests: ${log.slice(-500)}`);
      const line = log.slice(log.lastIndexOf(REPORT) + REPORT.length);
      return JSON.parse(line.slice(0, line.indexOf("; "))) as Record<string, number>;
    },
    unmount: async () => {
      await umount(mnt);
      const t = setTimeout(() => child.kill("SIGTERM"), 30_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** VmRSS and VmHWM of a process, in MiB. */
export function memoryOf(pid: number): { rssMb: number; hwmMb: number } {
  const s = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(s)?.[1] ?? NaN);
  return { rssMb: kb("VmRSS") / 1024, hwmMb: kb("VmHWM") / 1024 };
}
