// The client's initramfs (initrd.img): static busybox, initrd/init.sh, the modules to fetch and
// mount the images. Uncompressed newc cpio (unpacking is cheaper than decompressing under TCG).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type CpioEntry, withParentDirs, writeCpio } from "../lab/microvm/cpio.js";
import { requireTool } from "../lab/microvm/host-tools.js";
import { stripModuleSignature } from "../lab/microvm/initramfs.js";
import type { GuestKernel } from "../lab/microvm/kernel.js";
import { resolveModules } from "../lab/microvm/modules.js";
import { IMAGES_SRC, keyOf, sha256 } from "./util.js";

/** Modules the initramfs loads, in order (dependencies added): NIC, loop, squashfs, overlay. */
export const INITRD_MODULES = ["e1000", "loop", "squashfs", "overlay"];

function readModule(path: string): Buffer {
  if (path.endsWith(".ko")) return readFileSync(path);
  if (path.endsWith(".ko.xz")) return execFileSync(requireTool("xz"), ["-dc", path], { maxBuffer: 1 << 28 });
  if (path.endsWith(".ko.zst"))
    return execFileSync(requireTool("zstd"), ["-dcq", path], { maxBuffer: 1 << 28 });
  throw new Error(`unknown module compression: ${path}`);
}

export interface InitrdImage {
  key: string;
  data: Buffer;
}

export function buildInitrd(kernel: GuestKernel): InitrdImage {
  const busybox = requireTool("busybox");
  const bb = readFileSync(busybox);
  if (bb.includes(Buffer.from("/lib64/ld-linux"))) {
    throw new Error(`${busybox} is dynamically linked: apt-get install busybox-static`);
  }
  const init = readFileSync(join(IMAGES_SRC, "initrd", "init.sh"));
  const hook = readFileSync(join(IMAGES_SRC, "initrd", "udhcpc.script"));
  const mods = resolveModules(kernel.modulesDir, { initrd: INITRD_MODULES }, { loop: "max_loop=4" });
  const entries: CpioEntry[] = [
    { kind: "dir", path: "dev" },
    { kind: "chardev", path: "dev/console", major: 5, minor: 1, mode: 0o600 },
    { kind: "chardev", path: "dev/null", major: 1, minor: 3, mode: 0o666 },
    { kind: "dir", path: "proc" },
    { kind: "dir", path: "sys" },
    { kind: "dir", path: "run" },
    { kind: "dir", path: "tmp", mode: 0o1777 },
    { kind: "file", path: "bin/busybox", data: bb, mode: 0o755 },
    { kind: "symlink", path: "bin/sh", target: "busybox" },
    { kind: "file", path: "init", data: init, mode: 0o755 },
    { kind: "file", path: "udhcpc.script", data: hook, mode: 0o755 },
  ];
  const list: string[] = [];
  const sums: string[] = [];
  for (const m of mods) {
    const rel = m.relPath.replace(/\.ko\.(xz|zst|gz)$/, ".ko");
    const data = stripModuleSignature(readModule(join(kernel.modulesDir, m.relPath)));
    entries.push({ kind: "file", path: `lib/modules/${rel}`, data });
    list.push(`${rel}${m.params ? " " + m.params : ""}`);
    sums.push(sha256(data));
  }
  entries.push({ kind: "file", path: "etc/lab-modules", data: Buffer.from(list.join("\n") + "\n") });
  const key = keyOf({
    kernel: kernel.version,
    busybox: sha256(bb),
    init: sha256(init),
    hook: sha256(hook),
    list,
    sums,
  });
  return { key, data: writeCpio(withParentDirs(entries)) };
}
