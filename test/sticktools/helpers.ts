// Shared by the stick-tools tests: real exFAT sticks on the host (image, loop device,
// mount.exfat-fuse), the pershome CLI, and a tree with every kind of file.

import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";
import { makeExfatStick } from "../../lab/sticks/index.js";
import { killSync, lazyUnmountSync, track } from "../support/cleanup.js";
import { CLI } from "../support/mount.js";
import { run, waitFor, type RunResult } from "../support/run.js";

export { CLI };

/** Runs `pershome ARGS…`; never throws. */
export function pershome(
  args: string[],
  opts: { timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<RunResult> {
  return run(process.execPath, [CLI, ...args], {
    timeoutMs: opts.timeoutMs ?? 240_000,
    ...(opts.env ? { env: opts.env } : {}),
  });
}

/** The JSON a `--json` run printed (throws with the output if it is not JSON). */
export function json(r: RunResult): Record<string, unknown> {
  try {
    return JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    throw new Error(
      `not JSON: ${r.command} exited ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`,
    );
  }
}

/** A scratch directory removed after the file's tests. */
export function scratch(tag: string): string {
  const d = mkdtempSync(join(tmpdir(), `sticktools-${tag}-`));
  afterAll(async () => {
    // sticks a failed test left attached go first
    for (const s of [...live]) if (s.mounted) await s.detach();
    rmSync(d, { recursive: true, force: true });
  });
  return d;
}

const live = new Set<HostStick>();

export interface HostStick {
  image: string;
  /** where the stick is mounted (the folder that holds /pershome) */
  root: string;
  loop: string;
  home: string;
  mounted: boolean;
  /** mounts (again) */
  attach(opts?: { readOnly?: boolean }): Promise<void>;
  /** unmounts (exfat-fuse writes everything out) and detaches the loop device */
  detach(): Promise<void>;
  /** a pulled stick: SIGKILL the driver, drop the mount and the loop device */
  pull(): Promise<void>;
}

function exfatPid(loop: string, mnt: string): number | undefined {
  for (const ent of readdirSync("/proc")) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const argv = readFileSync(`/proc/${ent}/cmdline`, "utf8").split("\0");
      if (argv.includes(loop) && argv.includes(mnt) && argv.some((x) => x.includes("exfat")))
        return Number(ent);
    } catch {
      /* gone */
    }
  }
  return undefined;
}

/** A new exFAT stick image, attached and mounted (detached again after the file's tests). */
export async function exfatHostStick(
  dir: string,
  name: string,
  sizeMb: number,
  label = "STICK",
): Promise<HostStick> {
  const image = join(dir, `${name}.img`);
  await makeExfatStick(image, sizeMb, label);
  const root = join(dir, `${name}-mnt`);
  mkdirSync(root, { recursive: true });
  let untrack: (() => void) | null = null;
  const s: HostStick = {
    image,
    root,
    loop: "",
    home: join(root, "pershome"),
    mounted: false,
    async attach(opts = {}) {
      const loop = spawnSync("losetup", ["-f", "--show", image], { encoding: "utf8" }).stdout.trim();
      if (!loop) throw new Error(`losetup failed for ${image}`);
      s.loop = loop;
      const o = ["nosuid", "nodev", "uid=0", "gid=0", "umask=022", ...(opts.readOnly ? ["ro"] : [])].join(
        ",",
      );
      const r = spawnSync("mount.exfat-fuse", ["-o", o, loop, root], { encoding: "utf8" });
      if (r.status !== 0) {
        spawnSync("losetup", ["-d", loop]);
        throw new Error(`mount.exfat-fuse failed: ${r.stderr}`);
      }
      s.mounted = true;
      untrack = track({
        what: `exfat stick ${image}`,
        undo: () => {
          lazyUnmountSync(root);
          spawnSync("losetup", ["-d", loop], { stdio: "ignore" });
        },
      });
    },
    async detach() {
      if (!s.mounted) return;
      const u = await run("umount", [root]);
      if (u.code !== 0) await run("umount", ["-l", root]);
      await waitFor(async () => (await run("losetup", ["-d", s.loop])).code === 0, 10_000, 200);
      s.mounted = false;
      untrack?.();
    },
    async pull() {
      const pid = exfatPid(s.loop, root);
      killSync(pid, "SIGKILL");
      if (pid) await waitFor(() => !readdirSync("/proc").includes(String(pid)), 10_000);
      await run("umount", ["-l", root]);
      await waitFor(async () => (await run("losetup", ["-d", s.loop])).code === 0, 10_000, 200);
      s.mounted = false;
      untrack?.();
    },
  };
  await s.attach();
  live.add(s);
  return s;
}

/**
 * A tree with every kind of file: regular, 0600, executable, symlinks (one dangling), hard
 * links (one across folders), a fifo, an empty folder, ns times, xattrs, a name with ":" and
 * "?", case twins, a 0700 folder.
 */
export async function makeEveryKindTree(t: string, bigMb = 2): Promise<void> {
  const r = await run("sh", [
    "-c",
    `set -e
rm -rf "$1"; mkdir -p "$1"; cd "$1"
printf 'hello\\n' > plain.txt
printf 'secret\\n' > key; chmod 600 key
printf '#!/bin/sh\\necho hi\\n' > run.sh; chmod 755 run.sh
ln -s plain.txt link
ln -s does/not/exist dangling
printf 'linked data\\n' > h1; ln h1 h2; mkdir sub; ln h1 sub/h3
mkfifo fifo; chmod 640 fifo
mkdir empty
mkdir -p deep/er/still; printf x > deep/er/still/f
printf a > 'notes: draft?.txt'
printf M > Makefile; printf m > makefile
head -c ${bigMb * 1024 * 1024} /dev/urandom > big.bin
setfattr -n user.color -v blue plain.txt
setfattr -n user.bin -v 0x00ff10 key
setfattr -n user.dir -v yes deep
touch -d @1732700000.123456789 plain.txt
touch -h -d @1700000000.987654321 link
touch -d @1690000000.000000001 run.sh
touch -d @1600000000.5 sub
chmod 700 sub
touch -d @1500000000.25 .
`,
    "sh",
    t,
  ]);
  if (r.code !== 0) throw new Error(`making the tree failed: ${r.stderr}`);
}

/** One line per entry: path, type, mode, links, size, mtime (ns), symlink target. */
export async function describeTree(dir: string): Promise<string[]> {
  const r = await run("sh", [
    "-c",
    `cd "$1" && find . -printf '%p %y %m %n %s %T@ %l\\n' | LC_ALL=C sort`,
    "sh",
    dir,
  ]);
  return r.stdout.trim().split("\n");
}

/** user.* xattrs of a tree, as getfattr prints them (sorted). */
export async function xattrDump(dir: string): Promise<string> {
  const r = await run("sh", [
    "-c",
    `cd "$1" && getfattr -R -h -d -m '^user\\.' -e hex . 2>/dev/null`,
    "sh",
    dir,
  ]);
  return r.stdout
    .split("\n\n")
    .map((b) => b.trim())
    .filter(Boolean)
    .sort()
    .join("\n\n");
}
