/* global process */
// `node bench/vfat-flush/run.mjs [BASE_CLI]`: small files saved on FAT32 mounted with vfat's
// `flush` (as the login hook mounts it), bare and through bindfs, posixovl and pershome (this
// tree's dist/src/cli/main.js; BASE_CLI: another build's, compared too), in one micro-VM boot
// (guest.mjs says how). After `npm run build`; bindfs and fuse-posixovl installed (.ci/run
// installs both).
import path from "node:path";
import { fileURLToPath } from "node:url";
import { runVfatBench } from "../vfat-vm.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const clis = [path.resolve(here, "../../dist/src/cli/main.js")];
if (process.argv[2]) clis.push(path.resolve(process.argv[2]));
await runVfatBench(path.join(here, "guest.mjs"), clis, { sticksMb: [256], timeoutMs: 2_400_000 });
