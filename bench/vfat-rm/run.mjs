/* global process, console */
// `node bench/vfat-rm/run.mjs A_CLI B_CLI`: removals and truncations on FAT32 under kernel vfat
// through two builds of pershome (their dist/src/cli/main.js), in one micro-VM boot (guest.mjs
// says how). After `npx tsc -p tsconfig.json`; e.g. A = a worktree of main, B = this tree.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { runInVm } from "../../dist/lab/microvm/index.js";
import { makeFat32Stick } from "../../dist/lab/sticks/index.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const [a, b] = process.argv.slice(2).map((p) => path.resolve(p));
const work = fs.mkdtempSync(path.join(os.tmpdir(), "pershome-vfat-rm-bench-"));
const sticks = [];
for (const k of ["a", "b"]) sticks.push({ image: await makeFat32Stick(path.join(work, `${k}.img`), 128) });
const r = await runInVm({
  command: `node ${path.join(here, "guest.mjs")} ${a} ${b}`,
  sticks,
  timeoutMs: 2_400_000,
  onOutput: (s) => process.stderr.write(s),
});
fs.rmSync(work, { recursive: true, force: true });
console.log(
  r.output
    .split("\n")
    .filter((l) => l.startsWith("BENCH"))
    .join("\n") || r.output.slice(-3000),
);
process.exit(r.exitCode);
