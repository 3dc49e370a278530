/* global process, console, performance, Buffer */
// In the micro-VM (bench/vfat-flush/run.mjs): small files saved on a FAT32 stick mounted as the
// login hook mounts it, with vfat's `flush` (src/login/stick-mount.ts), where every close of a
// written file sleeps 0.1 s in the kernel (docs/benchmarks.md, "Thirteenth round"). Each
// candidate gets its own folder on the one stick: the bare stick (the floor), bindfs -s,
// posixovl, pershome, and optionally a second pershome build ("base"). Each round saves 200
// files of 1 KiB in 10 new folders (open, write, close: an editor's or a tar's pattern) through
// every candidate, the order rotated between rounds; prints the medians and the ratios.
import fs from "node:fs";
import { execFileSync } from "node:child_process";

const [cli, baseCli] = process.argv.slice(2);
const ROUNDS = 3;
const dir = "/run/vf";
for (const x of ["s", "m"]) fs.mkdirSync(`${dir}/${x}`, { recursive: true });
execFileSync("mount", ["-t", "vfat", "-o", "noatime,shortname=mixed,utf8,flush", "/dev/sda", `${dir}/s`]);

const mounts = {
  floor: null,
  bindfs: (lower, mnt) => execFileSync("bindfs", ["-s", lower, mnt]),
  posixovl: (lower, mnt) => execFileSync("mount.posixovl", ["-F", "-S", lower, mnt]),
  pershome: (lower, mnt) => execFileSync(process.execPath, [cli, "mount", lower, mnt]),
};
if (baseCli) mounts.base = (lower, mnt) => execFileSync(process.execPath, [baseCli, "mount", lower, mnt]);
const where = {};
for (const [name, mount] of Object.entries(mounts)) {
  const lower = `${dir}/s/${name}`;
  fs.mkdirSync(lower);
  if (!mount) {
    where[name] = lower;
    continue;
  }
  const mnt = `${dir}/m/${name}`;
  fs.mkdirSync(mnt);
  mount(lower, mnt);
  where[name] = mnt;
}

const data = Buffer.alloc(1024, "x");
function save(root) {
  const t0 = performance.now();
  fs.mkdirSync(root);
  for (let d = 0; d < 10; d++) {
    fs.mkdirSync(`${root}/d${d}`);
    for (let f = 0; f < 20; f++) fs.writeFileSync(`${root}/d${d}/file${f}.txt`, data);
  }
  return (performance.now() - t0) / 1000;
}

const names = Object.keys(where);
const res = Object.fromEntries(names.map((n) => [n, []]));
for (let round = 0; round < ROUNDS; round++) {
  const order = names.map((_, i) => names[(i + round) % names.length]);
  for (const n of order) {
    res[n].push(save(`${where[n]}/r${round}`));
    execFileSync("sync"); // the next candidate does not pay this one's writeback
  }
  console.log(`round ${round}: ${order.map((n) => `${n} ${res[n][round].toFixed(2)} s`).join(", ")}`);
}
for (const n of names) if (mounts[n]) execFileSync("umount", [where[n]]);

const med = (a) => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)];
const m = Object.fromEntries(names.map((n) => [n, med(res[n])]));
for (const n of names)
  console.log(
    `BENCH ${n}: ${m[n].toFixed(2)} s for 200 files (rounds ${res[n].map((x) => x.toFixed(2)).join("/")})`,
  );
const ratio = (a, b) => (m[a] / m[b]).toFixed(2);
console.log(
  `BENCH pershome / floor ${ratio("pershome", "floor")}, / bindfs ${ratio("pershome", "bindfs")}, / posixovl ${ratio("pershome", "posixovl")}` +
    (baseCli ? `, / base ${ratio("pershome", "base")}` : ""),
);
