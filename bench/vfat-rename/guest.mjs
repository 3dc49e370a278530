/* global process, console, performance, Buffer */
// In the micro-VM (bench/vfat-rename/run.mjs): editor-style saves (4 KiB temp file, rename over)
// on FAT32 under the kernel's vfat driver, through two builds of the layer mounted side by side
// (A on /dev/sda, B on /dev/sdb), interleaved in 3 rounds; prints the median ms per save.
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
const data = Buffer.alloc(4096, "x");
const fsyncDir = (dir) => {
  const d = fs.openSync(dir, C.O_RDONLY | C.O_DIRECTORY);
  fs.fsyncSync(d);
  fs.closeSync(d);
};
/** n saves; `durable`: fsync of the temp file and of the folder, as a careful editor does */
function saves(dir, n, durable) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const fd = fs.openSync(`${dir}/doc${i % 10}.swp`, C.O_WRONLY | C.O_CREAT | C.O_TRUNC, 0o600);
    fs.writeSync(fd, data);
    if (durable) fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(`${dir}/doc${i % 10}.swp`, `${dir}/doc${i % 10}`);
    if (durable) fsyncDir(dir);
  }
  return (performance.now() - t0) / n;
}
const res = { A: { plain: [], durable: [] }, B: { plain: [], durable: [] } };
for (let round = 0; round < 3; round++)
  for (const k of ["A", "B"]) {
    res[k].plain.push(saves(mnt[k], 100, false));
    res[k].durable.push(saves(mnt[k], 50, true));
  }
const med = (a) => a.slice().sort((x, y) => x - y)[1];
const f = (a) => a.map((x) => x.toFixed(1)).join("/");
for (const kind of ["plain", "durable"])
  console.log(
    `BENCH ${kind} saves: A ${med(res.A[kind]).toFixed(1)} ms, B ${med(res.B[kind]).toFixed(1)} ms, B/A ${(med(res.B[kind]) / med(res.A[kind])).toFixed(2)} (rounds A ${f(res.A[kind])}, B ${f(res.B[kind])})`,
  );
