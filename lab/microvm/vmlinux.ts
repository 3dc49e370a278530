import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { microVmCacheDir, pruneCache } from "./cache.js";
import { findTool } from "./host-tools.js";

// Booting the compressed bzImage costs ~4 s under TCG, almost all of it the kernel decompressing
// itself in emulated code. QEMU can instead load the uncompressed ELF vmlinux directly through
// its PVH entry point (kernels built with CONFIG_PVH=y, as Debian's are), so we extract vmlinux
// once on the host (~1 s) and cache it.

const MAGICS: { magic: Buffer; tool: string; args: string[] }[] = [
  { magic: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), tool: "xz", args: ["-dcq"] },
  { magic: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), tool: "zstd", args: ["-dcq"] },
  { magic: Buffer.from([0x1f, 0x8b, 0x08]), tool: "gzip", args: ["-dcq"] },
];

/** True if `elf` is an x86-64 ELF with the Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY). */
export function hasPvhNote(elf: Buffer): boolean {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2) return false;
  const phoff = Number(elf.readBigUInt64LE(32));
  const phentsize = elf.readUInt16LE(54);
  const phnum = elf.readUInt16LE(56);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (ph + 56 > elf.length || elf.readUInt32LE(ph) !== 4 /* PT_NOTE */) continue;
    const off = Number(elf.readBigUInt64LE(ph + 8));
    const size = Number(elf.readBigUInt64LE(ph + 32));
    let p = off;
    while (p + 12 <= off + size && p + 12 <= elf.length) {
      const namesz = elf.readUInt32LE(p);
      const descsz = elf.readUInt32LE(p + 4);
      const type = elf.readUInt32LE(p + 8);
      const name = elf.subarray(p + 12, p + 12 + namesz).toString("latin1");
      if (name === "Xen\0" && type === 18) return true;
      p += 12 + Math.ceil(namesz / 4) * 4 + Math.ceil(descsz / 4) * 4;
    }
  }
  return false;
}

/** Decompresses the vmlinux payload of a bzImage, or returns undefined. */
export function extractVmlinux(bzImage: Buffer): Buffer | undefined {
  for (const { magic, tool, args } of MAGICS) {
    const bin = findTool(tool);
    if (!bin) continue;
    let at = bzImage.indexOf(magic);
    while (at >= 0) {
      // Trailing data after the stream makes the tool complain; the output is still complete.
      const r = spawnSync(bin, args, { input: bzImage.subarray(at), maxBuffer: 1 << 30 });
      if (r.stdout && r.stdout.length > 64 && r.stdout.readUInt32BE(0) === 0x7f454c46) return r.stdout;
      at = bzImage.indexOf(magic, at + 1);
    }
  }
  return undefined;
}

/**
 * Returns the path of an uncompressed, PVH-bootable vmlinux for `bzImagePath` (cached), or the
 * bzImage itself when that is not possible. Set PERSHOME_MICROVM_BZIMAGE=1 to always boot the bzImage.
 */
export function bootableKernel(
  bzImagePath: string,
  cacheDir = microVmCacheDir(),
): { path: string; pvh: boolean } {
  if (process.env.PERSHOME_MICROVM_BZIMAGE === "1") return { path: bzImagePath, pvh: false };
  const bz = readFileSync(bzImagePath);
  const key = createHash("sha256").update(bz).digest("hex").slice(0, 24);
  const out = join(cacheDir, `vmlinux-${key}`);
  const none = join(cacheDir, `vmlinux-${key}.unusable`);
  if (existsSync(out)) return { path: out, pvh: true };
  if (existsSync(none)) return { path: bzImagePath, pvh: false };
  mkdirSync(cacheDir, { recursive: true });
  const elf = extractVmlinux(bz);
  if (!elf || !hasPvhNote(elf)) {
    writeFileSync(none, "");
    return { path: bzImagePath, pvh: false };
  }
  const tmp = `${out}.${process.pid}.tmp`;
  writeFileSync(tmp, elf);
  renameSync(tmp, out);
  pruneCache(cacheDir, "vmlinux-", out);
  return { path: out, pvh: true };
}
