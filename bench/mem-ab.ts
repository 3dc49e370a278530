// A/B of two pershome builds on the bench's memory workload, interleaved round by round on one
// 100,000-file lower (RSS is less noisy than time, but the machine is shared: compare within a
// run). Per build and round: VmRSS at rest, after `ls -lR` of everything, after the bench's 5k
// creates, VmHWM, and the wall time and daemon CPU (utime+stime) of the listing and the creates.
//
//   npm run build && node dist/bench/mem-ab.js --base /path/to/other/checkout/dist/src/cli/main.js \
//     [--new <a third build's main.js>] [--rounds 3] [--lowers plain,exfat] [--many 100000]
// "new" is this checkout's build unless --new names another.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PERSHOME_CLI, memoryOf, mountPershome } from "./candidates.js";
import { fillMany, makeLower } from "./lowers.js";
import { must, sh, sleep } from "./sh.js";
import { buildPath, listOf, options, runMain, wholeNumber } from "./cli.js";
import { workloads } from "./workloads.js";

interface Args {
  base: string;
  new: string;
  rounds: number;
  lowers: ("plain" | "exfat")[];
  many: number;
}

const USAGE = `node dist/bench/mem-ab.js --base OTHER/dist/src/cli/main.js [options]   (as root)

The bench's memory workload, two pershome builds interleaved on one lower with many files:
VmRSS at rest, after ls -lR, after 5k creates, VmHWM, and the wall time and daemon CPU.

  --base FILE           the other build's dist/src/cli/main.js (required)
  --new FILE            a third build instead of this checkout's
  --rounds N            rounds (default 3)
  --lowers a,b          among plain, exfat (default plain)
  --many N              files on the lower (default 100000)
  -h, --help            this text`;

function parse(argv: string[]): Args {
  const v = options(
    argv,
    {
      base: { type: "string" },
      new: { type: "string" },
      rounds: { type: "string" },
      lowers: { type: "string" },
      many: { type: "string" },
    },
    USAGE,
  );
  return {
    base: buildPath("base", v.base),
    new: v.new !== undefined ? buildPath("new", v.new) : PERSHOME_CLI,
    rounds: wholeNumber("rounds", v.rounds, 3),
    lowers: listOf("lowers", v.lowers, ["plain", "exfat"] as const, ["plain"]),
    many: wholeNumber("many", v.many, 100_000),
  };
}

/** The daemon's user+system CPU so far, in seconds (/proc/<pid>/stat fields 14 and 15, in ticks). */
function cpuOf(pid: number, ticks: number): number {
  const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / ticks;
}

const METRICS = [
  "RSS at rest (MiB)",
  "RSS after ls -lR (MiB)",
  "RSS after + 5k creates (MiB)",
  "VmHWM (MiB)",
  "ls -lR wall (s)",
  "ls -lR daemon CPU (s)",
  "5k creates wall (s)",
  "5k creates daemon CPU (s)",
] as const;
type Metric = (typeof METRICS)[number];

const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function once(cli: string, dir: string, n: number, ticks: number): Promise<Record<Metric, number>> {
  await must("sync; echo 3 > /proc/sys/vm/drop_caches");
  const m = await mountPershome(dir, `${dir}.mnt`, {}, cli);
  try {
    const pid = m.pid!;
    await sleep(500);
    const rest = memoryOf(pid).rssMb;
    let c0 = cpuOf(pid, ticks);
    let t0 = process.hrtime.bigint();
    const cnt = (await must("ls -lR . | grep -c '^-'", m.dir)).trim();
    const lsWall = Number(process.hrtime.bigint() - t0) / 1e9;
    const lsCpu = cpuOf(pid, ticks) - c0;
    if (cnt !== `${n}`) throw new Error(`ls -lR saw ${cnt} files, expected ${n}`);
    const afterLs = memoryOf(pid).rssMb;
    c0 = cpuOf(pid, ticks);
    t0 = process.hrtime.bigint();
    await must(workloads({ tarball: "", tarFiles: 0, seqMb: 0 })[0]!.steps[0]!.cmd, m.dir);
    const crWall = Number(process.hrtime.bigint() - t0) / 1e9;
    const crCpu = cpuOf(pid, ticks) - c0;
    await sleep(500);
    const end = memoryOf(pid);
    await must("rm -rf w", m.dir); // through the mount, untimed: the next round starts alike
    return {
      "RSS at rest (MiB)": rest,
      "RSS after ls -lR (MiB)": afterLs,
      "RSS after + 5k creates (MiB)": end.rssMb,
      "VmHWM (MiB)": end.hwmMb,
      "ls -lR wall (s)": lsWall,
      "ls -lR daemon CPU (s)": lsCpu,
      "5k creates wall (s)": crWall,
      "5k creates daemon CPU (s)": crCpu,
    };
  } finally {
    await m.unmount();
  }
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  const work = fs.mkdtempSync(path.join("/var/tmp", "pershome-mem-ab-"));
  const got = new Map<string, number[]>(); // lower|metric|who -> value per round
  const load = (): string =>
    os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(" ");
  const ticks = Number((await must("getconf CLK_TCK")).trim());
  console.log(`load average before: ${load()}`);
  for (const lowerName of a.lowers) {
    const low = await makeLower(lowerName, work, 4);
    try {
      const dir = `${low.root}/many`;
      await fillMany(dir, a.many);
      fs.mkdirSync(`${dir}.mnt`);
      for (let r = 0; r < a.rounds; r++) {
        const order = r % 2 ? (["new", "base"] as const) : (["base", "new"] as const);
        for (const who of order) {
          const v = await once(who === "base" ? a.base : a.new, dir, a.many, ticks);
          for (const k of METRICS) {
            const key = `${lowerName}|${k}|${who}`;
            got.set(key, [...(got.get(key) ?? []), v[k]]);
          }
          console.log(
            `${lowerName} #${r + 1} ${who}: ` + METRICS.map((k) => `${k} ${v[k].toFixed(2)}`).join(", "),
          );
        }
      }
    } finally {
      await low.close();
    }
  }
  console.log(`load average after: ${load()}`);
  console.log("\n| lower | measure | base | new | new/base median |\n|---|---|---|---|---|");
  for (const lowerName of a.lowers)
    for (const k of METRICS) {
      const b = got.get(`${lowerName}|${k}|base`) ?? [];
      const n = got.get(`${lowerName}|${k}|new`) ?? [];
      const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(k.includes("MiB") ? 1 : 2)).join(", ");
      const ratio = median(n.map((x, i) => x / b[i]!));
      console.log(`| ${lowerName} | ${k} | ${fmt(b)} | ${fmt(n)} | ${ratio.toFixed(3)} |`);
    }
  await sh(`rm -rf '${work}'`);
}

runMain(USAGE, main);
