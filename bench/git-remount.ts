// `git status` right after a remount (a login), two pershome builds interleaved on one stick
// (the machine is shared: compare ratios from one run). git's index keeps each file's inode
// number; a build whose numbers change at every mount makes this status read and hash every
// tracked file again.
//
//   npm run build && node dist/bench/git-remount.js --base /other/checkout/dist/src/cli/main.js \
//     [--tree /usr/include] [--lower exfat|plain] [--rounds 3]
//
// The repository is made once off the mount (git add, commit, gc into one pack) and untarred
// onto the stick through this build. Each round, each build: mount, `git status` (untimed: the
// index takes this build's stat data), unmount, drop the page cache, mount, `git status` timed.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PERSHOME_CLI, mountPershome } from "./candidates.js";
import { makeLower } from "./lowers.js";
import { must, sh, timed } from "./sh.js";
import { buildPath, oneOf, options, runMain, wholeNumber } from "./cli.js";

const USAGE = `node dist/bench/git-remount.js --base OTHER/dist/src/cli/main.js [options]   (as root)

git status right after a remount (a login), two pershome builds interleaved on one stick.

  --base FILE           the other build's dist/src/cli/main.js (required)
  --tree DIR            the repository's source tree (default /usr/include)
  --lower NAME          plain or exfat (default exfat)
  --rounds N            rounds (default 3)
  -h, --help            this text`;

function parse(argv: string[]): { base: string; tree: string; lower: "plain" | "exfat"; rounds: number } {
  const v = options(
    argv,
    {
      base: { type: "string" },
      tree: { type: "string" },
      lower: { type: "string" },
      rounds: { type: "string" },
    },
    USAGE,
  );
  return {
    base: buildPath("base", v.base),
    tree: path.resolve(v.tree ?? "/usr/include"),
    lower: oneOf("lower", v.lower, ["plain", "exfat"] as const, "exfat"),
    rounds: wholeNumber("rounds", v.rounds, 3),
  };
}

const GIT = "git -c user.name=bench -c user.email=bench@example.invalid";

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  const work = fs.mkdtempSync(path.join("/var/tmp", "pershome-git-remount-"));
  const mnt = `${work}/mnt`;
  fs.mkdirSync(mnt);
  const repo = `${work}/repo`;
  await must(`mkdir -p '${repo}' && cp -a '${a.tree}' '${repo}/t'`);
  await must(`${GIT} init -q && ${GIT} add -A && ${GIT} commit -q -m x && ${GIT} gc -q`, `${repo}/t`);
  const files = (await must("git ls-files | wc -l", `${repo}/t`)).trim();
  const low = await makeLower(a.lower, work, 1);
  const builds = { base: a.base, new: PERSHOME_CLI };
  const times: Record<keyof typeof builds, number[]> = { base: [], new: [] };
  try {
    const dir = `${low.root}/home`;
    fs.mkdirSync(dir);
    let m = await mountPershome(dir, mnt, {}, PERSHOME_CLI);
    await must(`tar -C '${repo}' -cf - t | tar -xf -`, m.dir);
    await m.unmount();
    console.log(`${a.tree}: ${files} tracked files, on ${a.lower}; load ${os.loadavg()[0]!.toFixed(2)}`);
    for (let r = 0; r < a.rounds; r++) {
      const order: (keyof typeof builds)[] = r % 2 ? ["new", "base"] : ["base", "new"];
      for (const who of order) {
        m = await mountPershome(dir, mnt, {}, builds[who]);
        await must("git status --porcelain > /dev/null", `${m.dir}/t`);
        await m.unmount();
        await must("sync; echo 3 > /proc/sys/vm/drop_caches");
        m = await mountPershome(dir, mnt, {}, builds[who]);
        // rchar: what git read (a shell's /proc/<pid>/io counts its reaped children): the
        // index and a few files when the stat data matched, every tracked file when not
        const io = `${work}/io`;
        const t = await timed(`git status --porcelain > /dev/null; cat /proc/$$/io > '${io}'`, `${m.dir}/t`);
        const readMb = Number(/^rchar: (\d+)/m.exec(fs.readFileSync(io, "utf8"))?.[1]) / 2 ** 20;
        const dirty = (await sh("git status --porcelain | wc -l", `${m.dir}/t`)).out.trim();
        await m.unmount();
        if (dirty !== "0") throw new Error(`${who}: git status shows ${dirty} changes`);
        times[who].push(t);
        console.log(
          `#${r + 1} ${who}: git status after remount ${t.toFixed(2)} s, read ${readMb.toFixed(1)} MiB`,
        );
      }
    }
  } finally {
    await low.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
  const ratios = times.new.map((x, i) => x / times.base[i]!).sort((x, y) => x - y);
  const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(2)).join(", ");
  console.log(`load ${os.loadavg()[0]!.toFixed(2)}`);
  console.log(`base (s): ${fmt(times.base)}; new (s): ${fmt(times.new)}`);
  console.log(`new/base per round: ${fmt(ratios)}; median ${ratios[(ratios.length - 1) >> 1]!.toFixed(3)}`);
}

runMain(USAGE, main);
