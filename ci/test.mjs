/* global process, console */
// The whole test run (what `npm test` does after building): the vitest suites, then the lab's
// Cucumber scenarios, always both; then one closing line per runner and a total:
//   vitest: N passed, N failed, N skipped
//   cucumber: N passed, N failed, N skipped   (scenarios)
//   N passed, N failed, N skipped
// Failed tests are named (with their error's first lines) just above those lines, so the end
// of a long CI log says what broke. Exits non-zero if anything failed. `--unit` or `--lab` runs only one of them.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync } from "node:fs";

const only = process.argv[2];
mkdirSync("reports", { recursive: true });
const counts = [];

if (only !== "--lab") {
  rmSync("reports/vitest.json", { force: true });
  const r = spawnSync(
    "npx",
    ["vitest", "run", "--reporter=default", "--reporter=json", "--outputFile.json=reports/vitest.json"],
    { stdio: "inherit" },
  );
  counts.push(vitestCounts(r.status));
}
if (only !== "--unit") {
  rmSync("reports/cucumber/report.json", { force: true });
  const r = spawnSync("npx", ["cucumber-js"], { stdio: "inherit" });
  counts.push(cucumberCounts(r.status));
}

for (const c of counts) for (const f of c.failures ?? []) console.log(f);

let failed = 0;
const total = { passed: 0, failed: 0, skipped: 0 };
for (const c of counts) {
  console.log(`${c.name}: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped`);
  total.passed += c.passed;
  total.failed += c.failed;
  total.skipped += c.skipped;
  failed += c.failed;
}
console.log(`${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
process.exit(failed > 0 ? 1 : 0);

function vitestCounts(status) {
  try {
    const r = JSON.parse(readFileSync("reports/vitest.json", "utf8"));
    const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
    // A run that failed outside any test (a suite that did not load) still fails.
    const failed = r.numFailedTests + (status !== 0 && r.numFailedTests === 0 ? 1 : 0);
    return { name: "vitest", passed: r.numPassedTests, failed, skipped, failures: vitestFailures(r) };
  } catch (err) {
    return { name: "vitest", passed: 0, failed: 1, skipped: 0, why: err.message };
  }
}

/** "FAILED file > test", then its error's first lines, for each failed test and each suite that failed to load. */
function vitestFailures(r) {
  const out = [];
  const firstLines = (m) =>
    String(m ?? "")
      .split("\n")
      .slice(0, 6)
      .join("\n    ");
  for (const f of r.testResults ?? []) {
    const file = f.name.slice(process.cwd().length + 1);
    const bad = (f.assertionResults ?? []).filter((a) => a.status === "failed");
    for (const a of bad)
      out.push(`FAILED ${file} > ${a.fullName}\n    ${firstLines(a.failureMessages?.[0])}`);
    if (f.status === "failed" && bad.length === 0) out.push(`FAILED ${file}\n    ${firstLines(f.message)}`);
  }
  return out;
}

function cucumberCounts(status) {
  const c = { name: "cucumber", passed: 0, failed: 0, skipped: 0, failures: [] };
  let features = [];
  try {
    features = JSON.parse(readFileSync("reports/cucumber/report.json", "utf8"));
  } catch {
    /* no report: counted below */
  }
  for (const f of features) {
    for (const s of f.elements ?? []) {
      if (s.type !== "scenario") continue;
      const st = (s.steps ?? []).map((x) => x.result?.status);
      if (st.some((x) => x === "failed" || x === "undefined" || x === "ambiguous")) {
        c.failed++;
        const step = (s.steps ?? []).find((x) => x.result?.status !== "passed");
        const why = String(step?.result?.error_message ?? step?.result?.status ?? "")
          .split("\n")
          .slice(0, 6);
        c.failures.push(
          `FAILED ${f.uri} > ${s.name} > ${step?.keyword ?? ""}${step?.name ?? ""}\n    ${why.join("\n    ")}`,
        );
      } else if (st.some((x) => x === "skipped" || x === "pending")) c.skipped++;
      else c.passed++;
    }
  }
  // cucumber-js exits non-zero for failures outside scenarios too (a BeforeAll hook, a crash).
  if (status !== 0 && c.failed === 0) c.failed = 1;
  return c;
}
