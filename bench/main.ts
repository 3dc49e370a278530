// npm run bench: the bench's main entry point (options in USAGE below, or npm run bench -- --help).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  CANDIDATES,
  type CandidateName,
  memoryOf,
  mountCandidate,
  type Mounted,
  ROOT,
} from "./candidates.js";
import { runFat32InVm, VM_HOSTNAME } from "./fat32-vm.js";
import { fillMany, type Lower, LOWER_NAMES, type LowerName, makeLower } from "./lowers.js";
import { settledWrites, type WriteCount } from "./stick-writes.js";
import { runLogin } from "./login.js";
import { listOf, options, runMain, UsageError, wholeNumber } from "./cli.js";
import { topSelfTime } from "./profile.js";
import { markdown, type Row, svg } from "./report.js";
import { must, sh, sleep, timed } from "./sh.js";
import { WORKLOAD_NAMES, type Workload, workloads } from "./workloads.js";

interface Options {
  quick: boolean;
  repeat: number;
  workloads: string[];
  lowers: LowerName[];
  manyFiles: number;
  seqMb: number;
  tree: string;
  files: number;
  churn: number;
  /** the fat32 run (in the VM, under TCG) divides the counts and sizes by this */
  vmScale: number;
  vmTree: string;
  cpuProf: boolean;
  candidates: CandidateName[];
  /** inside the micro-VM (bench/fat32-vm.ts): run the fat32 lower and leave the rows here */
  inVm?: string;
}

const USAGE = `npm run bench [-- options]   (as root)

Runs each workload on each lower with each candidate, candidates interleaved, and writes
reports/bench/<YYYY-MM-DD-HHMM>/ (report.md, chart.svg, results.json, machine.txt).

  --quick               one repeat (unless --repeat says otherwise)
  --repeat N            repeats per workload (default 3)
  --workloads a,b       among ${WORKLOAD_NAMES.join(", ")} (default: all)
  --lowers a,b          among plain, exfat, fat32 (default: all; fat32 runs in the QEMU
                        micro-VM, several times slower: compare its ratios, not its seconds)
  --candidates a,b      among ${CANDIDATES.join(", ")} (default: all)
  --many N              files on the stick for the mount and memory workloads (default 100000)
  --seq-mb N            size of the sequential file in MB (default 500)
  --tree DIR            the source tree the tree workload untars (default /usr/include)
  --files N             small files of the files workload (default 5000; a multiple of 50)
  --churn N             files renamed, and chmod'ed and linked to (default 2000; even)
  --vm-scale N          the fat32 run divides --files, --churn, --many and --seq-mb by N
                        (default 5: the VM runs several times slower than the host)
  --vm-tree DIR         the fat32 run's source tree (default /usr/include/linux)
  --cpu-prof            also profile the pershome daemon (node --cpu-prof)
  -h, --help            this text

See docs/benchmarks.md for how to read the report.`;

/** `n` divided by the VM's scale, a multiple of `m` and at least `m`. */
const scaled = (n: number, scale: number, m = 1): number => Math.max(m, Math.round(n / scale / m) * m);

function parseOptions(argv: string[]): Options {
  const v = options(
    argv,
    {
      quick: { type: "boolean" },
      repeat: { type: "string" },
      workloads: { type: "string" },
      lowers: { type: "string" },
      candidates: { type: "string" },
      many: { type: "string" },
      "seq-mb": { type: "string" },
      tree: { type: "string" },
      files: { type: "string" },
      churn: { type: "string" },
      "vm-scale": { type: "string" },
      "vm-tree": { type: "string" },
      "cpu-prof": { type: "boolean" },
      "in-vm": { type: "string" },
    },
    USAGE,
  );
  const quick = v.quick ?? false;
  return {
    quick,
    repeat: wholeNumber("repeat", v.repeat, quick ? 1 : 3),
    workloads: listOf("workloads", v.workloads, WORKLOAD_NAMES, WORKLOAD_NAMES),
    lowers: v["in-vm"] ? ["fat32"] : listOf("lowers", v.lowers, LOWER_NAMES, LOWER_NAMES),
    manyFiles: wholeNumber("many", v.many, 100_000),
    seqMb: wholeNumber("seq-mb", v["seq-mb"], 500),
    tree: v.tree ?? "/usr/include",
    files: wholeNumber("files", v.files, 5000, 50),
    churn: wholeNumber("churn", v.churn, 2000, 2),
    vmScale: wholeNumber("vm-scale", v["vm-scale"], 5),
    vmTree: v["vm-tree"] ?? "/usr/include/linux",
    cpuProf: v["cpu-prof"] ?? false,
    candidates: listOf("candidates", v.candidates, CANDIDATES, CANDIDATES),
    ...(v["in-vm"] ? { inVm: v["in-vm"] } : {}),
  };
}

const stamp = (): string => new Date().toISOString().slice(0, 16).replace("T", "-").replace(":", "");
const say = (s: string): void => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}`);

async function machineNote(): Promise<string> {
  const lscpu = (await sh("lscpu | grep -E 'Model name|^CPU\\(s\\)'")).out.trim();
  return [
    `nproc: ${os.availableParallelism()}`,
    lscpu,
    `memory: ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `kernel: ${os.release()}`,
    `node: ${process.version}`,
    `bindfs: ${(await sh("dpkg-query -W -f '${Version}' bindfs")).out}`,
    `fuse-posixovl: ${(await sh("dpkg-query -W -f '${Version}' fuse-posixovl")).out}`,
    `exfat-fuse: ${(await sh("dpkg-query -W -f '${Version}' exfat-fuse")).out}`,
  ].join("\n");
}

const loadavg = (): string =>
  os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");

class Runner {
  rows: Row[] = [];
  private seq = 0;
  constructor(
    private o: Options,
    private work: string,
    private out: string,
  ) {}

  private row(lower: string, step: string, kind: string, c: CandidateName, unit?: string): Row {
    let r = this.rows.find((x) => x.lower === lower && x.step === step && x.candidate === c);
    if (!r) {
      r = { lower, step, kind, candidate: c, values: [], status: "ok", ...(unit ? { unit } : {}) };
      this.rows.push(r);
    }
    return r;
  }

  private mnt(): string {
    return `${this.work}/mnt`;
  }

  private mount(c: CandidateName, lower: string, probe?: string): Promise<Mounted> {
    const prof = this.o.cpuProf && c === "pershome" ? path.join(this.out, "cpu-prof") : undefined;
    return mountCandidate(c, lower, this.mnt(), {
      ...(probe ? { probe } : {}),
      ...(prof ? { cpuProfDir: prof } : {}),
    });
  }

  /** One workload, one candidate, one repeat, in a fresh folder of the lower. */
  async runOnce(low: Lower, w: Workload, c: CandidateName): Promise<void> {
    const lowerDir = `${low.root}/run${++this.seq}`;
    fs.mkdirSync(lowerDir);
    let m: Mounted | undefined;
    let failed = false;
    let before: WriteCount | undefined;
    try {
      try {
        m = await this.mount(c, lowerDir);
        if (w.setup) await must(w.setup, m.dir);
        before = await settledWrites(low.device);
      } catch (e) {
        for (const s of w.steps)
          this.row(low.name, s.name, s.kind, c).status = `mount/setup: ${(e as Error).message}`;
        say(`  ${c}: mount/setup FAILED: ${(e as Error).message}`);
        return;
      }
      for (const s of w.steps) {
        const r = this.row(low.name, s.name, s.kind, c);
        if (failed) continue;
        try {
          if (s.cold) {
            await m.unmount();
            await must("sync; echo 3 > /proc/sys/vm/drop_caches");
            m = await this.mount(c, lowerDir);
          }
          await m.requests?.(); // counted from here (outside the timed part)
          const t = await timed(s.cmd, m.dir);
          const sent = await m.requests?.();
          const got = (await sh(s.check, m.dir)).out.trim();
          if (got !== s.expect) throw new Error(`check "${s.check}" gave "${got}", expected "${s.expect}"`);
          r.values.push(t);
          if (sent) this.countRequests(low, s.name, sent);
        } catch (e) {
          failed = true;
          // The floor and bindfs only show the lower's own features (no symlinks on exFAT).
          const lowerOnly = c === "floor" || c === "bindfs";
          r.status = lowerOnly ? "unsupported" : String((e as Error).message);
          const what = lowerOnly ? "unsupported by the lower" : "FAILED";
          say(`  ${c} ${s.name}: ${what}: ${String((e as Error).message).slice(0, 200)}`);
        }
      }
    } finally {
      if (m) await m.unmount();
      // everything the steps wrote, the candidate's own deferred writes and unmount included
      if (before && !failed) this.countWrites(low, w, c, before, await settledWrites(low.device));
      await sh(`rm -rf '${lowerDir}'`);
    }
  }

  /** pershome's FUSE requests during one step (report.ts lists them under the table) */
  private countRequests(low: Lower, step: string, sent: Record<string, number>): void {
    const r = this.row(low.name, `${step}: FUSE requests`, "requests", "pershome", "requests");
    r.values.push(Object.values(sent).reduce((a, b) => a + b, 0));
    (r.detail ??= []).push(sent);
  }

  private countWrites(low: Lower, w: Workload, c: CandidateName, a: WriteCount, b: WriteCount): void {
    this.row(low.name, `${w.name}: write requests`, "writes", c, "requests").values.push(
      b.requests - a.requests,
    );
    this.row(low.name, `${w.name}: MiB written`, "writes", c, "MiB").values.push(
      (b.bytes - a.bytes) / 2 ** 20,
    );
  }

  async runWorkload(low: Lower, w: Workload): Promise<void> {
    for (let rep = 0; rep < this.o.repeat; rep++) {
      const cs = this.o.candidates;
      const order = cs.map((_, i) => cs[(i + rep) % cs.length]!);
      for (const c of order) {
        say(`${low.name} ${w.name} #${rep + 1} ${c}`);
        await this.runOnce(low, w, c);
      }
    }
  }

  /** Login-to-home-ready through the PAM hook (pershome only: nothing else has one). */
  async runLogin(): Promise<void> {
    const steps = {
      login: this.row("stick", "login to home ready (pamtester)", "login", "pershome"),
      hook: this.row("stick", "home ready, hook's own clock", "login", "pershome"),
      logout: this.row("stick", "logout to stick free (pamtester)", "login", "pershome"),
    };
    try {
      for (const t of await runLogin(this.work, this.o.repeat)) {
        steps.login.values.push(t.login);
        if (!Number.isNaN(t.hook)) steps.hook.values.push(t.hook);
        steps.logout.values.push(t.logout);
        say(`login ${t.login.toFixed(3)} s (hook ${t.hook.toFixed(3)} s), logout ${t.logout.toFixed(3)} s`);
      }
    } catch (e) {
      for (const r of Object.values(steps)) r.status = String((e as Error).message);
      say(`login: FAILED: ${(e as Error).message}`);
    }
  }

  /**
   * 100,000 files on the lower (made once, directly, each with its record as a home made through
   * pershome has), then mount time per candidate.
   */
  async runMount(low: Lower): Promise<void> {
    const dir = `${low.root}/many`;
    const n = this.o.manyFiles;
    say(`${low.name}: making ${n} files on the lower`);
    await fillMany(dir, n);
    const step = `mount ${n / 1000}k files`;
    const probe = "d0/f0";
    for (let rep = 0; rep < this.o.repeat; rep++) {
      for (const c of this.o.candidates.filter((x) => x !== "floor")) {
        const r = this.row(low.name, step, "mount", c);
        await must("sync; echo 3 > /proc/sys/vm/drop_caches");
        try {
          const t0 = process.hrtime.bigint();
          const m = await this.mount(c, dir, probe);
          r.values.push(Number(process.hrtime.bigint() - t0) / 1e9);
          await m.unmount();
        } catch (e) {
          r.status = String((e as Error).message);
        }
        say(`${low.name} mount #${rep + 1} ${c}: ${r.values.at(-1)?.toFixed(3) ?? r.status}`);
      }
    }
    // Memory: pershome at rest, after a stat of the tree, after a load of writes.
    if (this.o.candidates.includes("pershome") && this.o.workloads.includes("memory")) {
      const m = await this.mount("pershome", dir);
      const rest = this.row(low.name, `RSS at rest (${n / 1000}k files)`, "memory", "pershome");
      const lsr = this.row(low.name, "RSS after ls -lR of all", "memory", "pershome");
      const load = this.row(low.name, "RSS after + 5k creates", "memory", "pershome");
      const hwm = this.row(low.name, "peak RSS (VmHWM)", "memory", "pershome");
      try {
        await sleep(500);
        rest.values.push(memoryOf(m.pid!).rssMb);
        const cnt = (await must("ls -lR . | grep -c '^-'", m.dir)).trim();
        if (cnt !== `${n}`) throw new Error(`ls -lR saw ${cnt} files, expected ${n}`);
        lsr.values.push(memoryOf(m.pid!).rssMb);
        await must(workloads({ tarball: "", tarFiles: 0, seqMb: 0 })[0]!.steps[0]!.cmd, m.dir);
        await sleep(500);
        const mem = memoryOf(m.pid!);
        load.values.push(mem.rssMb);
        hwm.values.push(mem.hwmMb);
      } catch (e) {
        for (const r of [rest, lsr, load, hwm]) r.status = String((e as Error).message);
      } finally {
        await m.unmount();
      }
    }
    await sh(`rm -rf '${dir}'`);
  }
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  if (process.getuid?.() !== 0)
    throw new UsageError("run it as root: it mounts, makes loop devices and drops the page cache");
  // --in-vm mounts /dev/sda: only ever inside the micro-VM that fat32-vm.ts boots
  if (o.inVm && os.hostname() !== VM_HOSTNAME)
    throw new UsageError("--in-vm is the bench's own option inside its micro-VM, not for this machine");
  for (const [opt, dir] of [
    ["tree", o.tree],
    ["vm-tree", o.vmTree],
  ])
    if (!fs.existsSync(dir!)) throw new UsageError(`--${opt}: ${dir} does not exist`);
  // In the VM the host's / is the (read-only, overlaid) root: its own work folder, and no report.
  const out = o.inVm ?? path.join(ROOT, "reports/bench", stamp());
  const work = o.inVm ? "/var/tmp/pershome-bench-vm" : "/var/tmp/pershome-bench";
  fs.mkdirSync(out, { recursive: true });
  await sh(`umount '${work}/mnt' 2>/dev/null; umount '${work}/exfat-lower' 2>/dev/null`);
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  const note = [await machineNote(), `load average before: ${loadavg()}`];
  say(`options: ${JSON.stringify(o)}`);

  // A real source tree as a tarball, extracted as "t".
  const tarball = `${work}/tree.tar`;
  const base = path.basename(o.tree);
  await must(`tar -C '${path.dirname(o.tree)}' --transform 's,^${base},t,' -cf '${tarball}' '${base}'`);
  const tarFiles = Number((await must(`find '${o.tree}' ! -type d | wc -l`)).trim());
  const wls = workloads({ tarball, tarFiles, seqMb: o.seqMb, files: o.files, churn: o.churn }).filter((w) =>
    o.workloads.includes(w.name),
  );

  const runner = new Runner(o, work, out);
  const t0 = Date.now();
  for (const ln of o.lowers) {
    say(`lower ${ln}`);
    if (ln === "fat32" && !o.inVm) {
      const vm = await runFat32InVm(
        {
          workloads: o.workloads.filter((w) => w !== "login"),
          candidates: o.candidates,
          repeat: o.repeat,
          manyFiles: scaled(o.manyFiles, o.vmScale),
          seqMb: scaled(o.seqMb, o.vmScale),
          tree: o.vmTree,
          files: scaled(o.files, o.vmScale, 50),
          churn: scaled(o.churn, o.vmScale, 2),
          ...(o.cpuProf ? { cpuProfDir: path.join(out, "cpu-prof") } : {}),
        },
        work,
        8,
        say,
      );
      runner.rows.push(...vm.rows);
      note.push(`fat32: in the QEMU micro-VM (TCG), the kernel's vfat; the guest's note:`, vm.machine);
      continue;
    }
    const low = await makeLower(ln, work, 8);
    try {
      for (const w of wls) await runner.runWorkload(low, w);
      if (o.workloads.includes("mount") || o.workloads.includes("memory")) await runner.runMount(low);
    } finally {
      await low.close();
    }
  }
  if (o.inVm) {
    // the host's runFat32InVm reads these
    note.push(`wall time in the VM: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    fs.writeFileSync(
      path.join(o.inVm, "rows.json"),
      JSON.stringify({ rows: runner.rows, machine: note.join("\n") }),
    );
    fs.rmSync(work, { recursive: true, force: true });
    return;
  }
  if (o.workloads.includes("login")) {
    say("login through the PAM hook (pamtester, an exFAT stick)");
    await runner.runLogin();
  }
  note.push(`load average after: ${loadavg()}`, `wall time: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  note.push(`options: ${JSON.stringify(o)}`, `tree: ${o.tree} (${tarFiles} files and symlinks)`);

  const md = markdown(runner.rows);
  let prof = "";
  if (o.cpuProf) {
    const dir = path.join(out, "cpu-prof");
    const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")) : [];
    // The profiles of one mount each; summarise the biggest (the most work).
    const biggest = files
      .map((f) => path.join(dir, f))
      .sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0];
    if (biggest) {
      prof = `\n## Top self time (pershome daemon, ${path.basename(biggest)})\n\n| share | ms | function |\n|---|---|---|\n`;
      for (const t of topSelfTime(biggest, 20))
        prof += `| ${(t.share * 100).toFixed(1)}% | ${t.ms.toFixed(0)} | \`${t.fn}\` |\n`;
    }
  }
  fs.writeFileSync(
    path.join(out, "report.md"),
    `# pershome benchmark ${stamp()}\n\n${md}\n![ratios](chart.svg)\n\n\`\`\`\n${note.join("\n")}\n\`\`\`\n${prof}`,
  );
  fs.writeFileSync(path.join(out, "chart.svg"), svg(runner.rows));
  fs.writeFileSync(
    path.join(out, "results.json"),
    JSON.stringify({ options: o, machine: note, rows: runner.rows }, null, 2),
  );
  fs.writeFileSync(path.join(out, "machine.txt"), note.join("\n") + "\n");
  fs.rmSync(work, { recursive: true, force: true });
  console.log("\n" + md);
  console.log(note.join("\n"));
  if (prof) console.log(prof);
  console.log(`\nreport: ${out}`);
}

runMain(USAGE, main);
