// Prints one plain closing line from vitest's JSON report: "vitest: N passed, N failed, N skipped".
import { readFileSync } from "node:fs";
const file = process.argv[2] ?? "reports/vitest.json";
let r;
try {
  r = JSON.parse(readFileSync(file, "utf8"));
} catch (err) {
  console.log(`vitest: 0 passed, 1 failed (no report at ${file}: ${err.message})`);
  process.exit(1);
}
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
process.exit(r.numFailedTests > 0 || !r.success ? 1 : 0);
