/* global process, console */
// `node bench/vfat-flush/run.mjs [BASE_CLI]`: small files saved on FAT32 mounted with vfat's
// `flush` (as the login hook mounts it), bare and through bindfs, posixovl and pershome (this
// tree's dist/src/cli/main.js; BASE_CLI: another build's, compared too), in one micro-VM boot
// (guest.mjs says how). After `npm run build`; bindfs and fuse-posixovl installed (.ci/run
// installs both).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { runInVm } from "../../dist/lab/microvm/index.js";
import { makeFat32Stick } from "../../dist/lab/sticks/index.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.resolve(here, "../../dist/src/cli/main.js");
const base = process.argv[2] ? path.resolve(process.argv[2]) : "";
const work = fs.mkdtempSync(path.join(os.tmpdir(), "pershome-vfat-flush-bench-"));
const image = await makeFat32Stick(path.join(work, "stick.img"), 256);
const r = await runInVm({
  command: `node ${path.join(here, "guest.mjs")} ${cli} ${base}`,
  sticks: [{ image }],
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
