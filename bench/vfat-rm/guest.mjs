/* global process, console, performance, Buffer */
// In the micro-VM (bench/vfat-rm/run.mjs): `rm -rf` of a tree of 2,000 small files (40 folders
// of 50, 2 KiB each) and in-place rewrites (open with O_TRUNC, write 16 KiB, close) on FAT32
// under the kernel's vfat driver, through two builds of the layer mounted side by side (A on
// /dev/sda, B on /dev/sdb), interleaved in 3 rounds (the order swapped each round); prints
// the median ms.
import fs from "node:fs";
import { execFileSync } from "node:child_process";

const [cliA, cliB] = process.argv.slice(2);
const C = fs.constants;
const mnt = {};
for (const [k, cli, dev] of [
  ["A", cliA, "/dev/sda"],
  ["B", cliB, "/dev/sdb"],
]) {
  const d = `/run/b${k}`;
  for (const x of ["s", "m"]) fs.mkdirSync(`${d}/${x}`, { recursive: true });
  execFileSync("mount", ["-t", "vfat", "-o", "utf8,shortname=mixed", dev, `${d}/s`]);
  fs.mkdirSync(`${d}/s/pershome`);
  execFileSync(process.execPath, [cli, "mount", `${d}/s/pershome`, `${d}/m`]);
  mnt[k] = `${d}/m`;
}
const small = Buffer.alloc(2048, "x");
const mid = Buffer.alloc(16384, "y");
function tree(dir) {
  fs.mkdirSync(dir);
  for (let i = 0; i < 40; i++) {
    fs.mkdirSync(`${dir}/d${i}`);
    for (let j = 0; j < 50; j++) fs.writeFileSync(`${dir}/d${i}/f${j}.txt`, small);
  }
  execFileSync("sync");
}
function rm(dir) {
  const t0 = performance.now();
  execFileSync("rm", ["-rf", dir]);
  return performance.now() - t0;
}
/** n in-place rewrites of one file, ms each */
function rewrites(dir, n) {
  const p = `${dir}/doc.txt`;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const fd = fs.openSync(p, C.O_WRONLY | C.O_CREAT | C.O_TRUNC, 0o644);
    fs.writeSync(fd, mid);
    fs.closeSync(fd);
  }
  return (performance.now() - t0) / n;
}
const res = { A: { rm: [], rewrite: [] }, B: { rm: [], rewrite: [] } };
for (let round = 0; round < 3; round++) {
  const order = round % 2 === 0 ? ["A", "B"] : ["B", "A"];
  for (const k of order) tree(`${mnt[k]}/t${round}`);
  for (const k of order) res[k].rm.push(rm(`${mnt[k]}/t${round}`));
  for (const k of order) res[k].rewrite.push(rewrites(mnt[k], 100));
  console.log(`round ${round}: ${JSON.stringify(res)}`);
}
const med = (a) => a.slice().sort((x, y) => x - y)[1];
const f = (a) => a.map((x) => x.toFixed(1)).join("/");
for (const kind of ["rm", "rewrite"])
  console.log(
    `BENCH ${kind === "rm" ? "rm -rf of 2,000 files (ms)" : "O_TRUNC rewrite of 16 KiB (ms each)"}: A ${med(res.A[kind]).toFixed(1)}, B ${med(res.B[kind]).toFixed(1)}, B/A ${(med(res.B[kind]) / med(res.A[kind])).toFixed(2)} (rounds A ${f(res.A[kind])}, B ${f(res.B[kind])})`,
  );
