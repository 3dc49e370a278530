// Crash states from the layer's own stick calls (issue 7; docs/robustness.md): a home
// workload is recorded through the real layer, crash states are rebuilt from prefixes of the
// record under the FAT model (lab/crash/model.ts), and each one must open with the layer,
// keep everything that was promised durable, and be consistent or repaired by `pershome check`.
//
//   PERSHOME_CRASH_STATES=20000 PERSHOME_CRASH_SEED=7 npx vitest run test/crash-states
import { describe, expect, it } from "vitest";
import { runCrashStates } from "../../lab/crash/crash-states.js";

const STATES = Number(process.env.PERSHOME_CRASH_STATES ?? 1000);
const SEED = Number(process.env.PERSHOME_CRASH_SEED ?? 1);

describe("crash states of a home workload (FAT model)", () => {
  it(`keeps every promise in ${STATES} sampled crash states (seed ${SEED})`, async () => {
    const r = await runCrashStates({ seed: SEED, states: STATES, maxViolations: 1000 });
    const findings = [...r.findings].map(([k, v]) => `${k}×${v}`).join(", ") || "none";
    console.log(
      `crash states: ${r.events} recorded stick calls, ${r.cuts} cuts, ${r.states} states checked in ${r.seconds.toFixed(1)} s; ` +
        `${r.statesWithFindings} states needed check --repair (${findings}), in ${r.keptOnlyAfterRepair} of them a promise held only after it; ` +
        `${r.violations.length} violations`,
    );
    const shown = r.violations
      .slice(0, 15)
      .map((v) => `cut ${v.cut} after [${v.event}] {${v.state}} ${v.stage}: ${v.problem}`);
    expect(shown).toEqual([]);
  }, 600_000);
});
