import { rmSync } from "node:fs";
import { mustRun, runTool } from "./run.js";

export interface FsckResult {
  /** The checker found nothing to fix. */
  clean: boolean;
  exitCode: number;
  output: string;
}

/**
 * Creates a fresh FAT32 image of `sizeMb` MiB (replacing `path`). FAT32 needs at least ~33 MiB.
 * The default label is STICK: some drivers refuse `mkdir pershome` at the root of a volume
 * labelled PERSHOME (the label is a root directory entry too).
 */
export async function makeFat32Stick(path: string, sizeMb: number, label = "STICK"): Promise<string> {
  if (!/^[A-Z0-9 _-]{1,11}$/.test(label))
    throw new Error(`bad FAT label ${JSON.stringify(label)} (1-11 of A-Z 0-9 _ - space)`);
  rmSync(path, { force: true });
  await mustRun("mkfs.vfat", ["-F", "32", "-C", "-n", label, path, String(Math.round(sizeMb * 1024))]);
  return path;
}

/** fsck.fat -n (read-only check). */
export async function fsckFat(image: string): Promise<FsckResult> {
  const r = await runTool("fsck.fat", ["-n", image]);
  return { clean: r.exitCode === 0, exitCode: r.exitCode, output: (r.stdout + r.stderr).trim() };
}
