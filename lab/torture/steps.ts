/**
 * The pieces of one cut point shared by the exFAT torture on the host (cli.ts) and the FAT32 one
 * inside the micro-VM (vfat-guest.ts): the plan of cuts, the workload process, and what follows
 * a cut once the stick is back (pershome check, --repair when needed, mount, verify the journal).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { rng } from "../crash/model.js";
import { CLI, REPO, type Target } from "../fsx/target.js";
import { verifyJournal } from "./verify.js";

/** kill: SIGKILL of the layer (and of exfat-fuse on exFAT); pull: the USB stick taken out (vfat). */
export type CutKind = "kill" | "pull";
export type CutMode = CutKind | "mix";

/** How the FAT32 torture's guest half (vfat-guest.ts) marks its lines for the host half (vfat.ts). */
export const MARK = "torture-vfat:";

export interface PlannedCut {
  kind: CutKind;
  delayMs: number;
}

/** The cuts of a run, all from the seed (so the host and the guest compute the same plan). */
export function cutPlan(
  seed: number,
  cuts: number,
  minMs: number,
  maxMs: number,
  mode: CutMode,
): PlannedCut[] {
  const r = rng(seed);
  const plan: PlannedCut[] = [];
  for (let i = 0; i < cuts; i++) {
    const delayMs = Math.round(minMs + r() * (maxMs - minMs));
    const kind: CutKind = mode === "mix" ? (r() < 0.5 ? "kill" : "pull") : mode;
    plan.push({ kind, delayMs });
  }
  return plan;
}

export function tool(cmd: string, args: string[]): { code: number; out: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 300_000 });
  return { code: r.status ?? -1, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

/** A small tree to untar: nested folders, a few hundred KiB. */
export function makeTarball(work: string): string {
  const src = path.join(work, "tree-src");
  for (let d = 0; d < 4; d++) {
    const dir = path.join(src, `pkg-${d}`, "src", "lib");
    fs.mkdirSync(dir, { recursive: true });
    for (let f = 0; f < 8; f++)
      fs.writeFileSync(path.join(dir, `mod${f}.js`), `// module ${d}.${f}\n`.repeat(200 + f * 50), {
        mode: 0o644,
      });
    fs.writeFileSync(path.join(src, `pkg-${d}`, "run.sh"), "#!/bin/sh\necho run\n", { mode: 0o755 });
  }
  const tarball = path.join(work, "tree.tar");
  const r = tool("tar", ["-cf", tarball, "-C", src, "."]);
  if (r.code !== 0) throw new Error(`tar: ${r.out}`);
  return tarball;
}

export interface Workload {
  child: ChildProcess;
  exited: Promise<void>;
  /** resolves once it has set up its round and starts working (or has ended) */
  working: Promise<void>;
  /** the end of what it wrote to stderr */
  stderr(): string;
  /** SIGKILL to its whole process group (sqlite3, git, tar with it); waits until it is gone */
  kill(): Promise<void>;
}

/** Starts lab/torture/workload.js on `mnt` for round `cut`, journalling to `journal`. */
export function startWorkload(
  mnt: string,
  journal: string,
  cut: number,
  seed: number,
  tarball: string,
): Workload {
  const child = spawn(
    process.execPath,
    [path.join(REPO, "dist/lab/torture/workload.js"), mnt, journal, String(cut), String(seed)],
    // its own process group: the cut kills it with whatever it runs (sqlite3, git, tar)
    {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, TORTURE_TARBALL: tarball },
      detached: true,
    },
  );
  let err = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err = (err + d).slice(-4000)));
  const exited = new Promise<void>((res) => child.once("exit", () => res()));
  const working = new Promise<void>((res) => {
    child.stdout!.once("data", () => res());
    void exited.then(res);
  });
  return {
    child,
    exited,
    working,
    stderr: () => err,
    kill: async () => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        /* already gone */
      }
      await exited;
    },
  };
}

export interface Recovery {
  check: "clean" | "repaired" | "not repaired";
  promises: number;
  violations: string[];
  notes: string[];
  errors: Map<string, number>;
}

/**
 * After a cut, with the stick plugged again: `pershome check` (and `--repair` when it reports
 * problems, which must leave a clean check), mount, and every promise of the journal checked.
 */
export async function recover(t: Target, journal: string): Promise<Recovery> {
  const violations: string[] = [];
  t.attach();
  let check: Recovery["check"] = "clean";
  const c1 = tool(process.execPath, [CLI, "check", t.root, "--force"]);
  if (c1.code !== 0) {
    const rep = tool(process.execPath, [CLI, "check", "--repair", t.root, "--force"]);
    const c2 = tool(process.execPath, [CLI, "check", t.root, "--force"]);
    check = c2.code === 0 ? "repaired" : "not repaired";
    if (c2.code !== 0)
      violations.push(
        `pershome check after --repair (exit ${rep.code}) still reports problems: ${c2.out.trim().split("\n").slice(0, 6).join(" / ")}`,
      );
  }
  let verdict = {
    promises: 0,
    violations: [] as string[],
    notes: [] as string[],
    errors: new Map<string, number>(),
  };
  try {
    await t.mount();
    verdict = verifyJournal(fs.readFileSync(journal, "utf8"), t.mnt);
  } catch (e) {
    violations.push(`the layer does not mount: ${(e as Error).message.slice(0, 500)}`);
  }
  return {
    check,
    promises: verdict.promises,
    violations: [...violations, ...verdict.violations],
    notes: verdict.notes,
    errors: verdict.errors,
  };
}
