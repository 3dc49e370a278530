// The cut-point torture (lab/torture, `npm run torture`), short: a few pulls of an exFAT stick
// (kill -9 of the layer and exfat-fuse) in the middle of a realistic home workload, then fsck,
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
    expect(r.stdout).toMatch(new RegExp(`${CUTS} cut points, 0 violations`));
  }, 180_000);
});
