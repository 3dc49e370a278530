// A/B of two pershome builds on the bench's workloads, interleaved round by round on the same
// lowers (the machine is shared: compare ratios from one run, not seconds across runs).
//
//   npm run build && node dist/bench/ab.js --base /path/to/other/checkout/dist/src/cli/main.js \
//     [--workloads files,rename,chmod] [--lowers plain,exfat] [--rounds 3] [--with bindfs,posixovl] \
//     [--tree /usr/include] [--seq-mb 500]
//
// "base" is the other build, "new" this checkout's. Prints, per lower and step, each round's
// seconds and the median ratio new/base (below 1: the new build is faster).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PERSHOME_CLI, mountCandidate, mountPershome, type Mounted } from "./candidates.js";
import { makeLower, type Lower } from "./lowers.js";
import { must, sh, timed } from "./sh.js";
import { TIMED_WORKLOADS, workloads, type Workload } from "./workloads.js";
import { buildPath, listOf, options, runMain, wholeNumber } from "./cli.js";

interface Args {
  base: string;
  workloads: string[];
  lowers: ("plain" | "exfat")[];
  rounds: number;
  others: ("bindfs" | "posixovl")[];
  /** the source tree the "tree" workload untars */
  tree: string;
  /** the size of the "seq" workload's file */
  seqMb: number;
}

const USAGE = `node dist/bench/ab.js --base OTHER/dist/src/cli/main.js [options]   (as root)

A/B of two pershome builds on the bench's workloads, interleaved round by round on the same
lowers. "base" is the other build, "new" this checkout's; prints each round's seconds and the
median ratio new/base (below 1: the new build is faster).

  --base FILE           the other build's dist/src/cli/main.js (required)
  --workloads a,b       among ${TIMED_WORKLOADS.join(", ")} (default files,rename,chmod)
  --lowers a,b          among plain, exfat (default both)
  --rounds N            rounds (default 3)
  --with a,b            also run bindfs and/or posixovl
  --tree DIR            the source tree the tree workload untars (default /usr/include)
  --seq-mb N            size of the seq workload's file in MB (default 500)
  -h, --help            this text`;

function parse(argv: string[]): Args {
  const v = options(
    argv,
    {
      base: { type: "string" },
      workloads: { type: "string" },
      lowers: { type: "string" },
      rounds: { type: "string" },
      with: { type: "string" },
      tree: { type: "string" },
      "seq-mb": { type: "string" },
    },
    USAGE,
  );
  return {
    base: buildPath("base", v.base),
    workloads: listOf("workloads", v.workloads, TIMED_WORKLOADS, ["files", "rename", "chmod"]),
    lowers: listOf("lowers", v.lowers, ["plain", "exfat"] as const, ["plain", "exfat"]),
    rounds: wholeNumber("rounds", v.rounds, 3),
    others: listOf("with", v.with, ["bindfs", "posixovl"] as const, []),
    tree: path.resolve(v.tree ?? "/usr/include"),
    seqMb: wholeNumber("seq-mb", v["seq-mb"], 500),
  };
}

type Who = "base" | "new" | "bindfs" | "posixovl";
const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length === 0
    ? NaN
    : s.length % 2
      ? s[(s.length - 1) / 2]!
      : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  const work = fs.mkdtempSync(path.join("/var/tmp", "pershome-ab-"));
  const mnt = `${work}/mnt`;
  fs.mkdirSync(mnt);
  const times = new Map<string, number[]>(); // lower|step|who -> seconds per round
  const params = { tarball: "", tarFiles: 0, seqMb: a.seqMb };
  if (a.workloads.includes("tree")) {
    // as bench/main.ts: the tree as a tarball whose top folder is "t"
    params.tarball = `${work}/tree.tar`;
    const base = path.basename(a.tree);
    await must(
      `tar -C '${path.dirname(a.tree)}' --transform 's,^${base},t,' -cf '${params.tarball}' '${base}'`,
    );
    params.tarFiles = Number((await must(`find '${a.tree}' ! -type d | wc -l`)).trim());
  }
  const ws = workloads(params).filter((w) => a.workloads.includes(w.name));
  let seq = 0;
  const mount = (who: Who, dir: string): Promise<Mounted> =>
    who === "base"
      ? mountPershome(dir, mnt, {}, a.base)
      : who === "new"
        ? mountPershome(dir, mnt, {}, PERSHOME_CLI)
        : mountCandidate(who, dir, mnt);
  const once = async (low: Lower, w: Workload, who: Who, round: number): Promise<void> => {
    const dir = `${low.root}/ab${++seq}`;
    fs.mkdirSync(dir);
    let m = await mount(who, dir);
    try {
      if (w.setup) await must(w.setup, m.dir);
      for (const s of w.steps) {
        if (s.cold) {
          await m.unmount();
          await must("sync; echo 3 > /proc/sys/vm/drop_caches");
          m = await mount(who, dir);
        }
        let t: number;
        let got: string;
        try {
          t = await timed(s.cmd, m.dir);
          got = (await sh(s.check, m.dir)).out.trim();
        } catch (e) {
          got = `failed: ${(e as Error).message.split("\n")[0] ?? ""}`;
          t = NaN;
        }
        if (got !== s.expect) {
          // bindfs on exFAT cannot make symlinks: its row shows "–", the other builds go on
          if (who === "bindfs" || who === "posixovl") {
            console.log(`${low.name} #${round + 1} ${who} ${s.name}: n/a (${got})`);
            break;
          }
          throw new Error(`${who} ${s.name}: check gave "${got}", expected "${s.expect}"`);
        }
        const key = `${low.name}|${s.name}|${who}`;
        times.set(key, [...(times.get(key) ?? []), t]);
        console.log(`${low.name} #${round + 1} ${who} ${s.name}: ${t.toFixed(3)} s`);
      }
    } finally {
      await m.unmount();
      await sh(`rm -rf '${dir}'`);
    }
  };
  console.log(
    `load average before: ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}`,
  );
  for (const lowerName of a.lowers) {
    const low = await makeLower(lowerName, work, 4);
    try {
      for (let r = 0; r < a.rounds; r++) {
        // every candidate takes every place in turn: what ran just before can slow a lower down
        const all: Who[] = ["base", "new", ...a.others];
        const order = all.map((_, i) => all[(i + r) % all.length]!);
        for (const w of ws) for (const who of order) await once(low, w, who, r);
      }
    } finally {
      await low.close();
    }
  }
  console.log(
    `load average after: ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}`,
  );
  const others = a.others.map((o) => ` ${o} |`).join("");
  console.log(`\n| lower | step | base (s) | new (s) | new/base per round | new/base median |${others}`);
  console.log(`|---|---|---|---|---|---|${a.others.map(() => "---|").join("")}`);
  for (const lowerName of a.lowers)
    for (const w of ws)
      for (const s of w.steps) {
        const get = (who: Who): number[] => times.get(`${lowerName}|${s.name}|${who}`) ?? [];
        const b = get("base");
        const n = get("new");
        const ratios = n.map((x, i) => x / b[i]!);
        const fmt = (xs: number[]): string => (xs.length ? xs.map((x) => x.toFixed(2)).join(", ") : "–");
        const rest = a.others.map((o) => ` ${fmt(get(o))} |`).join("");
        console.log(
          `| ${lowerName} | ${s.name} | ${fmt(b)} | ${fmt(n)} | ${fmt(ratios)} | ${median(ratios).toFixed(2)} |${rest}`,
        );
      }
  fs.rmSync(work, { recursive: true, force: true });
}

runMain(USAGE, main);
