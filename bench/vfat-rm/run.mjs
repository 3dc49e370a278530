/* global process, console */
// `node bench/vfat-rm/run.mjs A_CLI B_CLI`: removals and truncations on FAT32 under kernel vfat
// through two builds of pershome (their dist/src/cli/main.js), in one micro-VM boot (guest.mjs
// says how). After `npm run build`; e.g. A = a worktree of main, B = this tree.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { runVfatBench } from "../vfat-vm.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const clis = process.argv.slice(2, 4).map((p) => path.resolve(p));
if (clis.length < 2) {
  console.error("usage: node bench/vfat-rm/run.mjs A_CLI B_CLI (two builds' dist/src/cli/main.js)");
  process.exit(2);
}
await runVfatBench(path.join(here, "guest.mjs"), clis, { sticksMb: [128, 128], timeoutMs: 2_400_000 });
