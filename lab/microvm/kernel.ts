import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { MicroVmError } from "./errors.js";

export interface GuestKernel {
  /** `uname -r` of the guest kernel, e.g. "6.1.0-56-amd64". */
  version: string;
  /** The bzImage handed to QEMU with -kernel. */
  image: string;
  /** /lib/modules/<version>. */
  modulesDir: string;
}

/** Compares Debian-style kernel versions ("6.1.0-56-amd64") numerically, part by part. */
export function compareKernelVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/);
  const pb = b.split(/[.-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? "";
    const y = pb[i] ?? "";
    const nx = /^\d+$/.test(x) ? Number(x) : NaN;
    const ny = /^\d+$/.test(y) ? Number(y) : NaN;
    const c = !isNaN(nx) && !isNaN(ny) ? nx - ny : x.localeCompare(y);
    if (c !== 0) return c;
  }
  return 0;
}

/**
 * Finds the guest kernel: a /boot/vmlinuz-<v> with a matching /lib/modules/<v>/modules.dep
 * (i.e. an installed linux-image package, Debian's linux-image-amd64). The newest wins unless
 * `version` (or $PERSHOME_VM_KERNEL) names one. The host's running kernel is irrelevant.
 */
export function findGuestKernel(
  version = process.env.PERSHOME_VM_KERNEL,
  bootDir = "/boot",
  modRoot = "/lib/modules",
): GuestKernel {
  const candidates: string[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync(bootDir);
  } catch {
    /* no /boot */
  }
  for (const f of entries) {
    const m = /^vmlinuz-(.+)$/.exec(f);
    if (!m?.[1]) continue;
    const v = m[1];
    if (existsSync(join(modRoot, v, "modules.dep")) && statSync(join(bootDir, f)).isFile())
      candidates.push(v);
  }
  if (version) {
    if (!candidates.includes(version)) {
      throw new MicroVmError(
        `guest kernel ${version} not found (need ${bootDir}/vmlinuz-${version} and ${modRoot}/${version}/modules.dep)`,
      );
    }
  } else {
    candidates.sort(compareKernelVersions);
    version = candidates.at(-1);
    if (!version) {
      throw new MicroVmError(
        `no guest kernel found (need ${bootDir}/vmlinuz-* with ${modRoot}/<version>/modules.dep): apt-get install linux-image-amd64`,
      );
    }
  }
  return { version, image: join(bootDir, `vmlinuz-${version}`), modulesDir: join(modRoot, version) };
}
