/**
 * The host half of the FAT32 torture (`npm run torture -- --lower vfat`): one micro-VM boot
 * (docs/microvm.md) with the FAT32 image as a USB stick under the kernel's vfat driver, and QEMU's
 * monitor (QMP) to pull the stick out and plug it in again, as the LTSP lab does. The guest
 * (vfat-guest.ts) runs the workload, the kills and the checks; this side, on each cut:
 *
 *   pull: `ready N` → wait the planned delay → device_del of the usb-storage device while the
 *         workload writes (whatever the guest's page cache held is lost) → `pulled-N`;
 *   both: `down N` → the stick out (if a kill left it in, unmounted) → `fsck.fat -n` on the
 *         image; anything beyond what any unclean unmount leaves is damage: the image, fsck's
 *         output and the journal are kept as evidence, then `fsck.fat -a` → plug in again →
 *         `plugged-N`; the guest's `result` line completes the cut.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { QmpClient } from "../ltsp/qmp.js";
import { runInVm } from "../microvm/index.js";
import { makeFat32Stick } from "../sticks/index.js";
import { REPO } from "../fsx/target.js";
import { emptyResult, logCut, type CutResult, type TortureOptions, type TortureResult } from "./cli.js";
import { cutPlan, MARK, tool } from "./steps.js";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * fsck.fat -n's verdict: nothing; "unclean": only what any unclean unmount leaves (the dirty
 * bit, which the backup boot sector then differs in, and a stale free-cluster count, a hint FAT
 * keeps in its FSInfo sector); or damage.
 */
export function fatVerdict(code: number, out: string): "clean" | "unclean" | "damage" {
  if (code === 0) return "clean";
  const rest = out
    .split("\n")
    .map((l) => l.trim())
    .filter(
      (l) =>
        l &&
        !/^fsck\.fat \d/.test(l) &&
        !/^There are differences between boot sector and its backup\.$/.test(l) &&
        !/^This is mostly harmless\. Differences: \(offset:original\/backup\)$/.test(l) &&
        !/^65:01\/00$/.test(l) && // offset 0x41 holds the dirty bit
        !/^Not automatically fixing this\.$/.test(l) &&
        !/^Dirty bit is set\. Fs was not properly unmounted/.test(l) &&
        !/^Automatically removing dirty bit\.$/.test(l) &&
        !/^Free cluster summary wrong \(\d+ vs\. really \d+\)$/.test(l) &&
        !/^Auto-correcting\.$/.test(l) &&
        !/^Leaving filesystem unchanged\.$/.test(l) &&
        !/: \d+ files, \d+\/\d+ clusters$/.test(l),
    );
  return code === 1 && rest.length === 0 ? "unclean" : "damage";
}

export async function runTortureVfat(o: TortureOptions): Promise<TortureResult> {
  const t0 = Date.now();
  const plan = cutPlan(o.seed, o.cuts, o.minMs, o.maxMs, o.cut);
  // short: the QMP socket's path must fit in sockaddr_un
  const work = fs.mkdtempSync(path.join(os.tmpdir().length > 60 ? "/tmp" : os.tmpdir(), "pershome-tv-"));
  const share = path.join(work, "share");
  fs.mkdirSync(share);
  const image = path.join(work, "stick.img");
  await makeFat32Stick(image, o.sizeMb);
  const qmpPath = path.join(work, "qmp.sock");
  const result = emptyResult();

  let qmp: QmpClient | undefined;
  let device: string | undefined = "usbstick0"; // qemu-args.ts names the stick plugged at boot so
  let node: string | undefined; // the block node of a stick plugged by this harness (not at boot)
  let plugs = 0;
  const pull = async (): Promise<void> => {
    if (!device) return;
    const mark = qmp!.eventMark();
    await qmp!.execute("device_del", { id: device });
    await qmp!.waitForEvent("DEVICE_DELETED", (e) => e.data?.["device"] === device, 30_000, mark);
    if (node) await qmp!.execute("blockdev-del", { "node-name": node });
    device = node = undefined;
  };
  const plug = async (): Promise<void> => {
    plugs++;
    node = `tstick${plugs}`;
    await qmp!.execute("blockdev-add", {
      "node-name": node,
      driver: "raw",
      file: { driver: "file", filename: image },
    });
    device = `tusb${plugs}`;
    await qmp!.execute("device_add", {
      driver: "usb-storage",
      id: device,
      drive: node,
      bus: "xhci.0",
      removable: true,
      serial: "pershome-stick0",
    });
  };

  const pending = new Map<number, Partial<CutResult> & { c0: number }>();
  const onDown = async (cut: number): Promise<void> => {
    const p = pending.get(cut)!;
    await pull();
    const n = tool("fsck.fat", ["-n", image]);
    const v = fatVerdict(n.code, n.out);
    p.fsck = v === "damage" ? "repaired" : v;
    const violations: string[] = [];
    if (v === "damage") {
      // keep the evidence: the image as the cut left it, what fsck said, the journal
      const ev = path.join(os.tmpdir(), `pershome-torture-vfat-evidence-${o.seed}-${cut}`);
      fs.mkdirSync(ev, { recursive: true });
      tool("cp", ["--sparse=always", image, path.join(ev, "pulled.img")]);
      fs.writeFileSync(path.join(ev, "fsck-n.txt"), n.out);
      fs.copyFileSync(path.join(share, "journal"), path.join(ev, "journal"));
      o.log(`  fsck.fat -n found damage (exit ${n.code}); image, fsck output and journal kept in ${ev}`);
    }
    if (v !== "clean") {
      const a = tool("fsck.fat", ["-a", image]);
      if (v === "damage")
        fs.writeFileSync(
          path.join(os.tmpdir(), `pershome-torture-vfat-evidence-${o.seed}-${cut}`, "fsck-a.txt"),
          a.out,
        );
      const again = tool("fsck.fat", ["-n", image]);
      if (again.code !== 0) {
        p.fsck = "unrepairable";
        violations.push(`fsck.fat -a left the image damaged: ${again.out.slice(-500)}`);
      } else if (v === "damage") result.fsckRepairs++;
    }
    // a kill leaves the kernel's vfat whole: its stick, cleanly unmounted, must check clean
    if (p.kind === "kill" && v !== "clean")
      violations.push(`fsck.fat after a kill (stick unmounted cleanly): ${v}`);
    p.violations = violations;
    await plug();
    fs.writeFileSync(path.join(share, `plugged-${cut}`), "");
  };
  const onResult = (r: {
    cut: number;
    check: CutResult["check"];
    promises: number;
    violations: string[];
    notes: string[];
    errors: Record<string, number>;
    daemonLog: string;
  }): void => {
    const p = pending.get(r.cut)!;
    const cr: CutResult = {
      cut: r.cut,
      kind: p.kind!,
      delayMs: p.delayMs!,
      promises: r.promises,
      fsck: p.fsck!,
      check: r.check,
      violations: [...(p.violations ?? []), ...r.violations],
      notes: r.notes,
      seconds: (Date.now() - p.c0) / 1000,
    };
    if (cr.check !== "clean") result.checkRepairs++;
    for (const [k, n] of Object.entries(r.errors)) result.workloadErrors.set(k, n);
    result.cuts.push(cr);
    result.violations += cr.violations.length;
    logCut(o, cr);
    if (r.daemonLog) o.log(`  (the daemon's log tail)\n${r.daemonLog}`);
  };

  // The guest's marker lines, handled one after the other.
  const abort = new AbortController();
  let chain = Promise.resolve();
  let failure: Error | undefined;
  let line = "";
  const onLine = (l: string): void => {
    if (!l.startsWith(MARK)) {
      if (l.trim()) o.log(`  guest: ${l}`);
      return;
    }
    const [what, arg = ""] = l.slice(MARK.length).trim().split(/ (.*)/s);
    const step = async (): Promise<void> => {
      if (what === "ready") {
        const cut = Number(arg);
        const { kind, delayMs } = plan[cut - 1]!;
        pending.set(cut, { c0: Date.now(), kind, delayMs });
        if (kind === "pull") {
          await sleep(delayMs);
          await pull();
          fs.writeFileSync(path.join(share, `pulled-${cut}`), "");
        }
      } else if (what === "down") await onDown(Number(arg));
      else if (what === "result") onResult(JSON.parse(arg) as Parameters<typeof onResult>[0]);
      else if (what === "failed") failure = new Error(`the guest side failed: ${JSON.parse(arg) as string}`);
    };
    chain = chain.then(step).catch((e: unknown) => {
      failure ??= e as Error;
      abort.abort(); // the guest would wait for us forever
    });
  };

  try {
    const vm = await runInVm({
      command: [
        "node",
        path.join(REPO, "dist/lab/torture/vfat-guest.js"),
        `--share /torture --cuts ${o.cuts} --seed ${o.seed} --min-ms ${o.minMs} --max-ms ${o.maxMs} --cut ${o.cut}`,
        `--vfat-options=${(o.vfatOptions ?? []).join(",")}`,
      ].join(" "),
      sticks: [{ image }],
      shares: [{ hostPath: share, guestPath: "/torture" }],
      cwd: REPO,
      memoryMb: 3072,
      timeoutMs: 300_000 + o.cuts * 240_000,
      qemuArgs: ["-qmp", `unix:${qmpPath},server=on,wait=off`],
      signal: abort.signal,
      onQemuStart: () => {
        void QmpClient.connect(qmpPath).then(
          (c) => (qmp = c),
          (e: unknown) => {
            failure ??= e as Error;
            abort.abort();
          },
        );
      },
      onOutput: (chunk) => {
        line += chunk.toString("utf8");
        let i;
        while ((i = line.indexOf("\n")) >= 0) {
          onLine(line.slice(0, i));
          line = line.slice(i + 1);
        }
      },
    }).catch((e: unknown) => {
      throw failure ?? e; // an abort of ours: say why
    });
    await chain;
    if (failure) throw failure;
    if (vm.exitCode !== 0)
      throw new Error(`the guest side ended with ${vm.exitCode}: ${vm.output.slice(-3000)}`);
  } finally {
    qmp?.close();
    if (!o.keep) fs.rmSync(work, { recursive: true, force: true });
    else o.log(`kept ${work}`);
  }
  result.seconds = (Date.now() - t0) / 1000;
  return result;
}
