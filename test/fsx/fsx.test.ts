// The fsx-like exerciser (lab/fsx) for a short seeded run on each host lower: random writes,
// truncates, appends, renames, links, chmods, fsyncs and remounts on a live pershome mount,
// every result checked against the model (docs/robustness.md, section 2). The long runs are
// `npm run fsx` (documented there with figures).
//
// The exerciser runs in a child process: it uses synchronous calls on the mount, which must
// never block this test worker.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { lowerKinds } from "../support/lower.js";
import { REPO } from "../support/mount.js";
import { run } from "../support/run.js";

const OPS = Number(process.env.PERSHOME_FSX_OPS ?? 3000);
const SEED = Number(process.env.PERSHOME_FSX_SEED ?? 1);

describe("the fsx exerciser", () => {
  it("finds its own model consistent on a plain directory (no layer): the control", async () => {
    const r = await run(
      process.execPath,
      [join(REPO, "dist/lab/fsx/cli.js"), "--lower", "raw", "--seed", String(SEED), "--ops", String(OPS)],
      { timeoutMs: 120_000 },
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`${OPS} ops, 0 remounts.*0 mismatches`));
  });

  it.each(lowerKinds())(
    `runs ${OPS} ops with remounts on pershome over the %s lower without a mismatch`,
    async (kind) => {
      const r = await run(
        process.execPath,
        [
          join(REPO, "dist/lab/fsx/cli.js"),
          "--lower",
          kind,
          "--seed",
          String(SEED),
          "--ops",
          String(OPS),
          "--remount-every",
          "600",
        ],
        { timeoutMs: 170_000 },
      );
      expect(r.code, r.stdout + r.stderr.slice(-4000)).toBe(0);
      const m = /(\d+) ops, (\d+) remounts/.exec(r.stdout);
      expect(Number(m?.[1])).toBe(OPS);
      expect(Number(m?.[2])).toBeGreaterThanOrEqual(2);
    },
    180_000,
  );
});
