import { readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { MicroVmError } from "./errors.js";

/**
 * Kernel modules in the initramfs, by name, in groups (dependencies are added automatically, each
 * to the first group that needs it). guest-init.sh loads "core" first (it needs them to reach the
 * host), then "usb" (only when sticks are plugged) and "fs" in the background while it mounts the
 * root. Anything else the guest needs later comes from the host's /lib/modules via modprobe.
 */
export const GUEST_MODULE_GROUPS = {
  // the host root over virtio-9p, the guest<->host output channel, the overlay root
  core: ["virtio_pci", "9pnet_virtio", "9p", "virtio_console", "overlay"],
  // USB sticks: xHCI host controller, mass storage (BOT and UAS), SCSI disks
  usb: ["xhci-hcd", "xhci-pci", "scsi_mod", "sd_mod", "usb-storage", "uas"],
  // FUSE for pershome itself; FAT and exFAT with the character sets sticks use
  fs: ["fuse", "fat", "vfat", "exfat", "nls_utf8", "nls_cp437", "nls_iso8859-1", "nls_ascii"],
} as const satisfies Record<string, readonly string[]>;

export type ModuleGroup = keyof typeof GUEST_MODULE_GROUPS;

/** All modules of GUEST_MODULE_GROUPS, flattened. */
export const GUEST_MODULES: readonly string[] = Object.values(GUEST_MODULE_GROUPS).flat();

/** Parameters given to insmod for some modules. */
export const GUEST_MODULE_PARAMS: Readonly<Record<string, string>> = {
  // Scan SCSI hosts one after another, so /dev/sda, /dev/sdb... follow the order sticks are plugged.
  scsi_mod: "scan=sync",
  // usb-storage waits 1 s before scanning a new device by default: pointless for a virtual stick.
  usb_storage: "delay_use=0",
};

export interface ResolvedModule {
  /** Canonical name (dashes turned into underscores). */
  name: string;
  /** Path relative to /lib/modules/<version>, as in modules.dep (may end in .ko.xz / .ko.zst). */
  relPath: string;
  /** insmod arguments. */
  params: string;
  /** Only a soft dependency: a failure to load it is not fatal. */
  optional: boolean;
  /** The group it is loaded with. */
  group: string;
}

export function canonicalModuleName(name: string): string {
  return name.replace(/\.ko(\.(xz|zst|gz))?$/, "").replace(/-/g, "_");
}

interface ModuleIndex {
  /** name -> { relPath, deps (names) } */
  dep: Map<string, { relPath: string; deps: string[] }>;
  builtin: Set<string>;
  alias: Map<string, string[]>;
  softPre: Map<string, string[]>;
  softPost: Map<string, string[]>;
}

function readOptional(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

export function loadModuleIndex(modulesDir: string): ModuleIndex {
  const depText = readOptional(join(modulesDir, "modules.dep"));
  if (!depText) throw new MicroVmError(`${modulesDir}/modules.dep missing or empty (run depmod?)`);
  const dep = new Map<string, { relPath: string; deps: string[] }>();
  for (const line of depText.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const relPath = line.slice(0, colon).trim();
    const deps = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map((p) => canonicalModuleName(basename(p)));
    dep.set(canonicalModuleName(basename(relPath)), { relPath, deps });
  }
  const builtin = new Set(
    readOptional(join(modulesDir, "modules.builtin"))
      .split("\n")
      .filter(Boolean)
      .map((p) => canonicalModuleName(basename(p))),
  );
  const alias = new Map<string, string[]>();
  for (const line of readOptional(join(modulesDir, "modules.alias")).split("\n")) {
    const m = /^alias\s+(\S+)\s+(\S+)/.exec(line);
    if (!m?.[1] || !m[2] || /[*?[]/.test(m[1])) continue;
    const key = canonicalModuleName(m[1]);
    const list = alias.get(key) ?? [];
    list.push(canonicalModuleName(m[2]));
    alias.set(key, list);
  }
  const softPre = new Map<string, string[]>();
  const softPost = new Map<string, string[]>();
  for (const line of readOptional(join(modulesDir, "modules.softdep")).split("\n")) {
    const m = /^softdep\s+(\S+)\s+(.*)$/.exec(line);
    if (!m?.[1] || m[2] === undefined) continue;
    let target: string[] | undefined;
    const pre: string[] = [];
    const post: string[] = [];
    for (const tok of m[2].split(/\s+/).filter(Boolean)) {
      if (tok === "pre:") target = pre;
      else if (tok === "post:") target = post;
      else target?.push(tok);
    }
    const name = canonicalModuleName(m[1]);
    softPre.set(name, [...(softPre.get(name) ?? []), ...pre]);
    softPost.set(name, [...(softPost.get(name) ?? []), ...post]);
  }
  return { dep, builtin, alias, softPre, softPost };
}

/**
 * Resolves module names into a load order: every module after its hard dependencies (from
 * modules.dep) and its soft "pre:" dependencies (from modules.softdep, through modules.alias).
 * Built-in modules are dropped. Unknown requested modules are an error; unknown soft
 * dependencies are skipped, as modprobe does.
 */
export function resolveModules(
  modulesDir: string,
  groups: Readonly<Record<string, readonly string[]>> = GUEST_MODULE_GROUPS,
  params: Readonly<Record<string, string>> = GUEST_MODULE_PARAMS,
): ResolvedModule[] {
  const idx = loadModuleIndex(modulesDir);
  const order: ResolvedModule[] = [];
  const done = new Set<string>();
  const visiting = new Set<string>();

  const lookup = (name: string): string[] => {
    const n = canonicalModuleName(name);
    if (idx.dep.has(n) || idx.builtin.has(n)) return [n];
    return (idx.alias.get(n) ?? []).filter((a) => idx.dep.has(a) || idx.builtin.has(a));
  };

  let group = "";
  const visit = (name: string, optional: boolean): void => {
    if (done.has(name) || visiting.has(name)) return;
    if (idx.builtin.has(name)) {
      done.add(name);
      return;
    }
    const entry = idx.dep.get(name);
    if (!entry) {
      if (optional) return;
      throw new MicroVmError(`kernel module ${name} not found in ${modulesDir}/modules.dep`);
    }
    visiting.add(name);
    for (const soft of idx.softPre.get(name) ?? []) for (const s of lookup(soft)) visit(s, true);
    for (const d of entry.deps) visit(d, optional);
    visiting.delete(name);
    done.add(name);
    order.push({ name, relPath: entry.relPath, params: params[name] ?? "", optional, group });
    for (const soft of idx.softPost.get(name) ?? []) for (const s of lookup(soft)) visit(s, true);
  };

  for (const [g, wanted] of Object.entries(groups)) {
    group = g;
    for (const w of wanted) {
      const names = lookup(w);
      if (names.length === 0) throw new MicroVmError(`kernel module ${w} not found in ${modulesDir}`);
      for (const n of names) visit(n, false);
    }
  }
  return order;
}
