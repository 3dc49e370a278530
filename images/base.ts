// The client base image (base.squashfs): debootstrap + the packages of scripts/base-packages, the
// host's Node 20 repacked as a .deb, Debian's kernel modules (pruned); no users (they come
// from the LTSP server at boot, as on a real LTSP client).
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { findGuestKernel, type GuestKernel } from "../lab/microvm/kernel.js";
import { loadModuleIndex, resolveModules } from "../lab/microvm/modules.js";
import { bootstrapKey, copyRoot, ensureBootstrap, provision } from "./rootfs.js";
import { cached, type Entry, filesHash, keyOf, type Log, run, sha256 } from "./util.js";

/** Bump when the base changes in a way its inputs do not show. */
const BASE_FORMAT = 1;

/**
 * Kernel modules a lab client needs (with their dependencies): USB sticks, the filesystems on them
 * and pershome's FUSE, the netboot (e1000, squashfs, overlay, loop), and what systemd loads at boot.
 * Names missing from this kernel are skipped (some are built in).
 */
export const CLIENT_MODULES = [
  // USB: host controllers, mass storage (BOT and UAS), SCSI disks
  "xhci-pci",
  "xhci-hcd",
  "ehci-pci",
  "ehci-hcd",
  "uhci-hcd",
  "ohci-pci",
  "usb-storage",
  "uas",
  "sd_mod",
  "sg",
  "scsi_mod",
  "usbhid",
  "hid-generic",
  // filesystems and character sets of sticks, FUSE, the image layers
  "fat",
  "vfat",
  "exfat",
  "msdos",
  "nls_utf8",
  "nls_cp437",
  "nls_cp850",
  "nls_iso8859-1",
  "nls_iso8859-15",
  "nls_ascii",
  "fuse",
  "overlay",
  "squashfs",
  "loop",
  "isofs",
  // network
  "e1000",
  "af_packet",
  // what systemd's modprobe@ units and udev ask for on a QEMU pc
  "autofs4",
  "configfs",
  "efi_pstore",
  "dm_mod",
  "drm",
  "i2c_piix4",
  "evdev",
  "serio_raw",
  "pcspkr",
  "button",
  "ata_piix",
  "ata_generic",
  "sr_mod",
  "cdrom",
  "virtio_rng",
  "rng_core",
  "crc32c_generic",
  "crc32c_intel",
  "ext4",
];

export interface HostNode {
  version: string; // dpkg version of the host's nodejs package
  nodeVersion: string; // process.version
}

export function hostNode(): HostNode {
  const version = execFileSync("dpkg-query", ["-W", "-f=${Version}", "nodejs"], { encoding: "utf8" }).trim();
  return { version, nodeVersion: process.version };
}

function clientModuleList(kernel: GuestKernel): string[] {
  const idx = loadModuleIndex(kernel.modulesDir);
  const have = CLIENT_MODULES.filter((m) => {
    const n = m.replace(/-/g, "_");
    return idx.dep.has(n) || idx.alias.has(n);
  });
  const resolved = resolveModules(kernel.modulesDir, { client: have }, {});
  return [...new Set(resolved.map((m) => m.relPath))].sort();
}

export function baseKey(kernel: GuestKernel): string {
  return keyOf({
    f: BASE_FORMAT,
    bootstrap: bootstrapKey(),
    scripts: filesHash(["scripts/base-provision.sh", "scripts/base-packages"]),
    kernel: kernel.version,
    modulesDep: sha256(readFileSync(join(kernel.modulesDir, "modules.dep"))),
    modules: clientModuleList(kernel),
    node: hostNode(),
  });
}

/** Repacks the host's installed `nodejs` package (its files, its control data) with dpkg-deb. */
async function repackNode(out: string, work: string, log: Log): Promise<void> {
  const st = join(work, "nodejs");
  mkdirSync(join(st, "DEBIAN"), { recursive: true });
  const files = execFileSync("dpkg", ["-L", "nodejs"], { encoding: "utf8" })
    .split("\n")
    .filter((p) => p.startsWith("/") && p !== "/." && existsSync(p));
  // tar keeps modes, symlinks and directories as installed
  const list = join(work, "nodejs.files");
  writeFileSync(list, files.map((f) => f.slice(1)).join("\n") + "\n");
  await run(log, "[nodejs]", "bash", [
    "-c",
    `set -o pipefail; tar -C / --no-recursion -cf - -T "$0" | tar -C "$1" -xf -`,
    list,
    st,
  ]);
  const status = execFileSync("dpkg-query", ["-s", "nodejs"], { encoding: "utf8" });
  const keep = new Set([
    "Package",
    "Version",
    "Architecture",
    "Multi-Arch",
    "Maintainer",
    "Installed-Size",
    "Depends",
    "Pre-Depends",
    "Recommends",
    "Suggests",
    "Provides",
    "Conflicts",
    "Breaks",
    "Replaces",
    "Section",
    "Priority",
    "Homepage",
    "Description",
  ]);
  const out_: string[] = [];
  let keeping = false;
  for (const line of status.split("\n")) {
    if (/^\s/.test(line)) {
      if (keeping) out_.push(line);
      continue;
    }
    const field = line.split(":")[0] ?? "";
    keeping = keep.has(field);
    if (keeping) out_.push(line);
  }
  writeFileSync(join(st, "DEBIAN", "control"), out_.join("\n").trimEnd() + "\n");
  // conffiles of the installed package, if any
  const conffiles = files.filter((f) => f.startsWith("/etc/"));
  if (conffiles.length) writeFileSync(join(st, "DEBIAN", "conffiles"), conffiles.join("\n") + "\n");
  await run(log, "[nodejs]", "dpkg-deb", ["--root-owner-group", "-Zgzip", "-z1", "--build", st, out]);
}

/** <entry>/root (the provisioned root, lower layer of the app build) and <entry>/base.squashfs. */
export async function ensureBase(cacheDir: string, log: Log, kernel = findGuestKernel()): Promise<Entry> {
  return cached(cacheDir, "base", baseKey(kernel), log, async (dir) => {
    const boot = await ensureBootstrap(cacheDir, log);
    const inputs = join(dir, "inputs");
    mkdirSync(inputs);
    const copying = copyRoot(join(boot.dir, "root"), join(dir, "root"), log);
    await repackNode(join(inputs, "nodejs.deb"), dir, log);
    // pruned modules tree: the selected .ko files plus the kernel's module metadata
    const mods = join(inputs, "modules");
    for (const rel of clientModuleList(kernel)) {
      mkdirSync(dirname(join(mods, rel)), { recursive: true });
      copyFileSync(join(kernel.modulesDir, rel), join(mods, rel));
    }
    for (const f of ["modules.order", "modules.builtin", "modules.builtin.modinfo"]) {
      if (existsSync(join(kernel.modulesDir, f))) copyFileSync(join(kernel.modulesDir, f), join(mods, f));
    }
    writeFileSync(join(inputs, "kver"), kernel.version + "\n");
    await copying;
    await provision(join(dir, "root"), "/provision/scripts/base-provision.sh", log, "[base]", inputs);
    await run(log, "[rm]", "rm", ["-rf", inputs, join(dir, "nodejs"), join(dir, "nodejs.files")]);
    await squash(join(dir, "root"), join(dir, "base.squashfs"), log, "[base]");
  });
}

/** mksquashfs with zstd (fast to unpack under TCG, small to download). */
export async function squash(src: string, out: string, log: Log, prefix: string): Promise<void> {
  await run(log, prefix, "mksquashfs", [
    src,
    out,
    "-noappend",
    "-no-progress",
    "-quiet",
    "-comp",
    "zstd",
    "-Xcompression-level",
    "6",
    "-b",
    "256K",
  ]);
}
