/**
 * The guest half of the FAT32 torture (vfat.ts runs the host half): inside the micro-VM, on the
 * USB stick under the kernel's vfat driver, with `pershome mount` as the product. For each cut of
 * the plan (the same one the host computes from the seed):
 *
 *   1. start the workload on the mount, print `torture-vfat: ready N`;
 *   2. kill: after the delay, SIGKILL the workload and the layer (the kernel lives on), unmount
 *      the stick cleanly. pull: wait for the host's `pulled-N` file (it pulled the stick out
 *      with QMP after the delay), then SIGKILL the workload and the layer, drop the dead mounts;
 *   3. print `torture-vfat: down N` (the host takes the stick out if still in, runs fsck.fat on
 *      the image, plugs it in again and writes `plugged-N`);
 *   4. wait for `plugged-N` and the new disk, then check, --repair, mount, verify the journal,
 *      print `torture-vfat: result {json}`.
 *
 * The journal lives in the guest's RAM (/tmp), never on the stick; a copy goes to the host's
 * share at each cut, for the evidence. argv: --share DIR --cuts N --seed S --min-ms A
 * --max-ms B --cut kill|pull|mix
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { Target } from "../fsx/target.js";
import { cutPlan, makeTarball, MARK, recover, startWorkload, type CutMode } from "./steps.js";

/** The stick's block device as this harness names it (relinked after each plug). */
const STICK = "/dev/stick0";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const say = (s: string): void => void process.stdout.write(`${MARK} ${s}\n`);

async function waitFor(what: string, ok: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** The USB disks the kernel has now (sda, sdb, …), with a size (the medium is readable). */
function disks(): string[] {
  return fs
    .readdirSync("/sys/block")
    .filter((d) => d.startsWith("sd"))
    .filter((d) => Number(fs.readFileSync(`/sys/block/${d}/size`, "utf8")) > 0);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      share: { type: "string" },
      cuts: { type: "string" },
      seed: { type: "string" },
      "min-ms": { type: "string" },
      "max-ms": { type: "string" },
      cut: { type: "string" },
      "vfat-options": { type: "string", default: "" },
    },
  });
  const share = values.share!;
  const seed = Number(values.seed);
  const plan = cutPlan(
    seed,
    Number(values.cuts),
    Number(values["min-ms"]),
    Number(values["max-ms"]),
    values.cut as CutMode,
  );
  const work = "/tmp/torture";
  fs.mkdirSync(work, { recursive: true });
  const journal = path.join(work, "journal");
  fs.writeFileSync(journal, "");
  const tarball = makeTarball(work);
  const vfatOptions = values["vfat-options"].split(",").filter(Boolean);
  const t = new Target({ kind: "vfat", device: STICK, work: path.join(work, "t"), vfatOptions });
  await t.create();
  for (let cut = 1; cut <= plan.length; cut++) {
    const { kind, delayMs } = plan[cut - 1]!;
    const c0 = Date.now();
    const w = startWorkload(t.mnt, journal, cut, seed, tarball);
    await w.working;
    say(`ready ${cut}`);
    let early = false;
    if (kind === "kill") {
      await sleep(delayMs);
      early = w.child.exitCode !== null;
      // the workload first: once the dead mount is gone its paths would lead to the folder beneath
      await w.kill();
      await t.crash({ keepStick: true });
      t.detach();
    } else {
      await waitFor(
        `the host to pull the stick (cut ${cut})`,
        () => fs.existsSync(path.join(share, `pulled-${cut}`)),
        120_000,
      );
      early = w.child.exitCode !== null;
      await w.kill();
      await t.crash();
    }
    fs.copyFileSync(journal, path.join(share, "journal"));
    say(`down ${cut}`);
    await waitFor(
      `the host to plug the stick in again (cut ${cut})`,
      () => fs.existsSync(path.join(share, `plugged-${cut}`)),
      300_000,
    );
    await waitFor("the stick's disk", () => disks().length > 0, 60_000);
    const dev = disks()[0]!;
    fs.rmSync(STICK, { force: true });
    fs.symlinkSync(`/dev/${dev}`, STICK);
    const rec = await recover(t, journal);
    const violations = [...rec.violations];
    if (early)
      violations.unshift(
        `the workload ended before the cut: ${w.stderr().trim().split("\n").slice(-3).join(" / ")}`,
      );
    say(
      `result ${JSON.stringify({
        cut,
        check: rec.check,
        promises: rec.promises,
        violations,
        notes: rec.notes,
        errors: Object.fromEntries(rec.errors),
        guestSeconds: (Date.now() - c0) / 1000,
        daemonLog: violations.length ? t.stderr().slice(-2000) : "",
      })}`,
    );
  }
  await t.unmount();
  t.detach();
  say("done");
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    say(`failed ${JSON.stringify((e as Error).stack ?? String(e))}`);
    process.exit(2);
  },
);
