// The tests' face of lab/sticks (images, loop devices, exfat-fuse, fsck, mtools).
// Filled in against lab/sticks' API; see lower.ts for how it is used.

import type { RunResult } from "./run.js";

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

export async function exfatStick(_image: string, _sizeMb: number): Promise<ExfatStick> {
  throw new Error("lab/sticks is not there yet");
}
