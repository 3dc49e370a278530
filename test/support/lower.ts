// The filesystem under the layer: the stick's `pershome` directory.
//
//  plain  a temporary directory on the host's own filesystem (ext4 here): case-sensitive,
//         allows any bytes, symlinks, device nodes; stands in for a stick a foreign driver wrote.
//  exfat  an exFAT image on a loop device through mount.exfat-fuse (lab/sticks).
//  vfat   the real kernel vfat driver on PERSHOME_VFAT_DEV (only inside the micro-VM, where
//         the suite runs with PERSHOME_LOWER=vfat; see test/vfat/).
//
// PERSHOME_LOWERS=plain,exfat picks kinds on the host (default: both).

import { mkdtempSync, chmodSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lazyUnmountSync, track } from "./cleanup.js";
import { isMounted } from "./mountinfo.js";
import { run, type RunResult, describeFailure } from "./run.js";
import { exfatStick, type AttachedStick } from "./sticks.js";

export type LowerKind = "plain" | "exfat" | "vfat";
const KINDS: readonly LowerKind[] = ["plain", "exfat", "vfat"];

/** The lower kinds this run covers. */
export function lowerKinds(): LowerKind[] {
  if (process.env.PERSHOME_LOWER) return [parseKind(process.env.PERSHOME_LOWER)];
  const list = (process.env.PERSHOME_LOWERS ?? "plain,exfat")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  return list.map(parseKind);
}

/** The kinds of this run that are also in `want` (for tests that only make sense on some). */
export function lowerKindsAmong(...want: LowerKind[]): LowerKind[] {
  return lowerKinds().filter((k) => want.includes(k));
}

function parseKind(s: string): LowerKind {
  if (!(KINDS as readonly string[]).includes(s))
    throw new Error(`unknown lower kind ${s} (want ${KINDS.join(", ")})`);
  return s as LowerKind;
}

export interface Lower {
  readonly kind: LowerKind;
  /** the stick's root directory (holds `pershome`); valid while attached */
  readonly root: string;
  /** the `pershome` directory the layer is mounted from; valid while attached */
  readonly dir: string;
  /** the image file, for exfat and vfat */
  readonly image: string | undefined;
  /** scratch space for the test (not on the stick): mountpoints, archives… */
  readonly work: string;
  /** the lower compares names without regard to case (FAT, exFAT) */
  readonly caseInsensitive: boolean;
  /** the lower itself can hold symlinks, device nodes and non-UTF-8 names (a plain dir) */
  readonly posixLower: boolean;
  attached(): boolean;
  /** Takes the stick away cleanly (the driver flushes, the image is complete on the host). */
  detach(): Promise<void>;
  attach(): Promise<void>;
  /** The lower driver's pid, if it is a process (exfat-fuse). */
  driverPid(): number | undefined;
  /** Kills the lower driver with SIGKILL and detaches whatever is left: a pulled stick. */
  crash(): Promise<void>;
  /** The image checker (fsck.exfat -n / fsck.fat -n) on the detached image. */
  fsck(): Promise<RunResult>;
  dispose(): Promise<void>;
}

/** A fresh work directory that an unprivileged user may traverse (mkdtemp makes 0700). */
export function makeWorkDir(tag: string): string {
  const d = mkdtempSync(join(tmpdir(), `pershome-test-${tag}-`));
  chmodSync(d, 0o755);
  return d;
}

export async function createLower(
  kind: LowerKind,
  label: string,
  opts: { sizeMb?: number } = {},
): Promise<Lower> {
  switch (kind) {
    case "plain":
      return createPlain(label);
    case "exfat":
      return createExfat(label, opts.sizeMb ?? 512);
    case "vfat":
      return createVfat(label);
  }
}

async function createPlain(label: string): Promise<Lower> {
  const work = makeWorkDir(label);
  const root = join(work, "stick");
  const dir = join(root, "pershome");
  await mkdir(dir, { recursive: true, mode: 0o755 });
  return {
    kind: "plain",
    root,
    dir,
    image: undefined,
    work,
    caseInsensitive: false,
    posixLower: true,
    attached: () => true,
    detach: async () => undefined,
    attach: async () => undefined,
    driverPid: () => undefined,
    crash: async () => undefined,
    fsck: async () => ({ stdout: "", stderr: "", code: 0, command: "(plain dir: nothing to check)" }),
    dispose: async () => {
      await rm(work, { recursive: true, force: true });
    },
  };
}

async function createExfat(label: string, sizeMb: number): Promise<Lower> {
  const work = makeWorkDir(label);
  const root = join(work, "stick");
  await mkdir(root, { mode: 0o755 });
  const image = join(work, "stick.img");
  const stick = await exfatStick(image, sizeMb);
  let att: AttachedStick | undefined;
  const untrack = track({
    what: `exfat stick ${image}`,
    undo: () => {
      if (att) att.undoSync();
    },
  });
  const lower: Lower = {
    kind: "exfat",
    root,
    dir: join(root, "pershome"),
    image,
    work,
    caseInsensitive: true,
    posixLower: false,
    attached: () => att !== undefined,
    async attach() {
      if (att) return;
      att = await stick.attach(root);
      await mkdir(join(root, "pershome"), { recursive: true });
    },
    async detach() {
      if (!att) return;
      const a = att;
      att = undefined;
      await a.detach();
    },
    driverPid: () => att?.driverPid(),
    async crash() {
      if (!att) return;
      const a = att;
      att = undefined;
      await a.crash();
    },
    fsck: () => stick.fsck(),
    async dispose() {
      await lower.detach().catch(() => att?.undoSync());
      untrack();
      await rm(work, { recursive: true, force: true });
    },
  };
  await lower.attach();
  return lower;
}

// ---- vfat: only inside the micro-VM -------------------------------------------------------

const VFAT_ROOT = "/tmp/pershome-vfat";
let vfatUsers = 0;

function vfatDev(): string {
  const d = process.env.PERSHOME_VFAT_DEV;
  if (!d)
    throw new Error("PERSHOME_LOWER=vfat needs PERSHOME_VFAT_DEV (the FAT32 stick's device, e.g. /dev/sda)");
  return d;
}

async function vfatMount(): Promise<void> {
  if (isMounted(VFAT_ROOT)) return;
  await mkdir(VFAT_ROOT, { recursive: true });
  const r = await run("mount", [
    "-t",
    "vfat",
    "-o",
    "utf8,shortname=mixed,flush,uid=0,gid=0",
    vfatDev(),
    VFAT_ROOT,
  ]);
  if (r.code !== 0) throw new Error(describeFailure(r));
}

async function vfatUnmount(): Promise<void> {
  if (!isMounted(VFAT_ROOT)) return;
  const r = await run("umount", [VFAT_ROOT]);
  if (r.code !== 0) throw new Error(describeFailure(r));
}

/**
 * The vfat stick is one device for the whole run: each Lower is its own directory
 * `/t-<label>/pershome` on it (the host test reads them back with mdir), one at a time.
 */
async function createVfat(label: string): Promise<Lower> {
  const work = makeWorkDir(label);
  await vfatMount();
  vfatUsers++;
  let sub = `t-${label}`;
  for (let i = 2; (await run("test", ["-e", join(VFAT_ROOT, sub)])).code === 0; i++) sub = `t-${label}-${i}`;
  const root = join(VFAT_ROOT, sub);
  await mkdir(join(root, "pershome"), { recursive: true });
  const untrack = track({ what: `vfat ${VFAT_ROOT}`, undo: () => lazyUnmountSync(VFAT_ROOT) });
  return {
    kind: "vfat",
    root,
    dir: join(root, "pershome"),
    image: vfatDev(),
    work,
    caseInsensitive: true,
    posixLower: false,
    attached: () => isMounted(VFAT_ROOT),
    attach: vfatMount,
    detach: async () => {
      await run("sync", []);
      await vfatUnmount();
    },
    driverPid: () => undefined,
    crash: async () => {
      // The kernel driver cannot be killed; the closest is dropping the mount at once.
      lazyUnmountSync(VFAT_ROOT);
    },
    fsck: async () => {
      const wasMounted = isMounted(VFAT_ROOT);
      if (wasMounted) await vfatUnmount();
      const r = await run("fsck.fat", ["-n", vfatDev()]);
      if (wasMounted) await vfatMount();
      return r;
    },
    dispose: async () => {
      // The stick's contents stay for the host to inspect; only the scratch space goes.
      vfatUsers--;
      if (vfatUsers === 0) await vfatUnmount().catch(() => lazyUnmountSync(VFAT_ROOT));
      untrack();
      await rm(work, { recursive: true, force: true });
    },
  };
}
