// The cut-point torture (lab/torture, `npm run torture`), short: a few cuts of an exFAT stick
// (kill -9 of the layer and exfat-fuse) and of a FAT32 one in the micro-VM (kill -9, and the
// stick pulled out) in the middle of a realistic home workload, then fsck,
// `pershome check [--repair]`, mount, and every promise of the workload's journal checked.
// The long runs and their figures: docs/robustness.md, section 4.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { lowerKindsAmong } from "../support/lower.js";
import { REPO } from "../support/mount.js";
import { run } from "../support/run.js";

const CUTS = Number(process.env.PERSHOME_TORTURE_CUTS ?? 4);

describe.each(lowerKindsAmong("exfat"))("the cut-point torture (%s)", (kind) => {
  it(`keeps every promise over ${CUTS} pulls in the middle of work`, async () => {
    const r = await run(
      process.execPath,
      [
        join(REPO, "dist/lab/torture/cli.js"),
        "--lower",
        kind,
        "--cuts",
        String(CUTS),
        "--seed",
        process.env.PERSHOME_TORTURE_SEED ?? "1",
        "--size-mb",
        "512",
        "--max-ms",
        "3000",
      ],
      { timeoutMs: 170_000 },
    );
    expect(r.code, r.stdout + r.stderr.slice(-3000)).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`${CUTS} cut points \\(${CUTS} kill -9, 0 pulls\\), 0 violations`));
  }, 180_000);
});

// FAT32 under the kernel's vfat driver, in the micro-VM (one boot): kill -9 of the layer in the
// guest, and the USB stick pulled out (QMP device_del) while the workload writes; fsck.fat on
// the image, plugged in again, check, mount, every promise checked.
const VFAT_CUTS = Number(process.env.PERSHOME_TORTURE_VFAT_CUTS ?? 3);

describe("the cut-point torture (FAT32, kernel vfat, micro-VM)", () => {
  it(`keeps every promise over ${VFAT_CUTS} kills and pulls in the middle of work`, async () => {
    const r = await run(
      process.execPath,
      [
        join(REPO, "dist/lab/torture/cli.js"),
        "--lower",
        "vfat",
        "--cuts",
        String(VFAT_CUTS),
        "--seed",
        process.env.PERSHOME_TORTURE_SEED ?? "1",
        "--size-mb",
        "256",
      ],
      { timeoutMs: 230_000 },
    );
    expect(r.code, r.stdout + r.stderr.slice(-3000)).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(`${VFAT_CUTS} cut points \\(\\d+ kill -9, [1-9]\\d* pulls\\), 0 violations`),
    );
  }, 240_000);
});
