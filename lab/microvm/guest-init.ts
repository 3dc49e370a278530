import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { MicroVmError } from "./errors.js";

/** Name of the virtio-serial port that carries the command's output (and the markers) to the host. */
export const OUTPUT_PORT_NAME = "pershome.out";
/** 9p mount tag of the per-run job directory (config.sh, job.sh). */
export const JOB_TAG = "microvmjob";
/** 9p mount tag of the host's root directory. */
export const ROOT_TAG = "hostroot";

/**
 * The guest's /init, read from guest-init.sh next to this module's source. Works both when this
 * file runs from lab/microvm/*.ts (vitest) and from dist/lab/microvm/*.js (tsc output, where the
 * .sh is not copied: we look in the source tree).
 */
export function guestInitScript(): string {
  const candidates = [
    new URL("./guest-init.sh", import.meta.url),
    new URL("../../../lab/microvm/guest-init.sh", import.meta.url),
  ];
  for (const u of candidates) {
    const p = fileURLToPath(u);
    if (existsSync(p)) {
      return readFileSync(p, "utf8")
        .replaceAll("@OUTPUT_PORT_NAME@", OUTPUT_PORT_NAME)
        .replaceAll("@JOB_TAG@", JOB_TAG)
        .replaceAll("@ROOT_TAG@", ROOT_TAG);
    }
  }
  throw new MicroVmError(
    `guest-init.sh not found (looked in ${candidates.map((u) => fileURLToPath(u)).join(", ")})`,
  );
}
