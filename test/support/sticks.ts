// The tests' face of lab/sticks (images, loop devices, exfat-fuse, fsck), plus what a crash test
// needs on top: the exfat-fuse pid, and a hard pull (SIGKILL the driver, drop mount and loop).

import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import {
  fsckExfat,
  makeExfatStick,
  mountExfatOnHost,
  unmountExfat,
  type ExfatMount,
} from "../../lab/sticks/index.js";
import { killSync } from "./cleanup.js";
import { isMounted } from "./mountinfo.js";
import { run, waitFor, type RunResult } from "./run.js";

export interface AttachedStick {
  /** unmount exfat-fuse (it flushes) and detach the loop device */
  detach(): Promise<void>;
  /** SIGKILL the driver, then drop the mount and the loop device */
  crash(): Promise<void>;
  driverPid(): number | undefined;
  /** synchronous best-effort cleanup for process exit */
  undoSync(): void;
}

export interface ExfatStick {
  attach(root: string): Promise<AttachedStick>;
  fsck(): Promise<RunResult>;
}

/** The pid of the process whose command line names both `a` and `b` (the loop device and mountpoint). */
function findProcess(a: string, b: string): number | undefined {
  for (const ent of readdirSync("/proc")) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const argv = readFileSync(`/proc/${ent}/cmdline`, "utf8").split("\0");
      if (argv.includes(a) && argv.includes(b) && argv.some((x) => x.includes("exfat"))) return Number(ent);
    } catch {
      /* gone */
    }
  }
  return undefined;
}

export async function exfatStick(image: string, sizeMb: number): Promise<ExfatStick> {
  await makeExfatStick(image, sizeMb, "STICK");
  return {
    async attach(root: string): Promise<AttachedStick> {
      const m: ExfatMount = await mountExfatOnHost(image, root, { uid: 0, gid: 0, umask: 0o022 });
      let pid: number | undefined;
      const driverPid = (): number | undefined => (pid ??= findProcess(m.loopDevice, m.mountpoint));
      driverPid();
      return {
        detach: () => unmountExfat(m),
        driverPid,
        async crash() {
          const p = driverPid();
          killSync(p, "SIGKILL");
          if (p) await waitFor(() => !readdirSync("/proc").includes(String(p)), 10_000);
          if (isMounted(m.mountpoint)) await run("umount", ["-l", m.mountpoint]);
          // The loop device may stay busy for a moment after its user died.
          await waitFor(async () => (await run("losetup", ["-d", m.loopDevice])).code === 0, 10_000, 200);
        },
        undoSync() {
          spawnSync("umount", ["-l", m.mountpoint], { stdio: "ignore" });
          spawnSync("losetup", ["-d", m.loopDevice], { stdio: "ignore" });
        },
      };
    },
    async fsck(): Promise<RunResult> {
      const r = await fsckExfat(image);
      return { stdout: r.output, stderr: "", code: r.exitCode, command: `fsck.exfat -n ${image}` };
    },
  };
}
