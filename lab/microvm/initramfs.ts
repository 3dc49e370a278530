import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { type CpioEntry, withParentDirs, writeCpio } from "./cpio.js";
import { microVmCacheDir, pruneCache } from "./cache.js";
import { guestInitScript } from "./guest-init.js";
import { requireTool } from "./host-tools.js";
import type { GuestKernel } from "./kernel.js";
import { GUEST_MODULE_GROUPS, GUEST_MODULE_PARAMS, type ResolvedModule, resolveModules } from "./modules.js";

/** Bump when the layout of the image changes in a way the other inputs do not capture. */
const FORMAT_VERSION = 3;

export interface InitramfsOptions {
  kernel: GuestKernel;
  /** A static busybox; default: `busybox` from PATH (Debian's busybox-static). */
  busybox?: string;
  cacheDir?: string;
  /** Module groups (default GUEST_MODULE_GROUPS). */
  moduleGroups?: Readonly<Record<string, readonly string[]>>;
}

export interface Initramfs {
  path: string;
  /** sha256 of the inputs, also the file name. */
  key: string;
  /** false when taken from the cache. */
  built: boolean;
  buildMs: number;
  modules: ResolvedModule[];
}

function sha256(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}

function readModule(path: string): Buffer {
  if (path.endsWith(".ko")) return readFileSync(path);
  if (path.endsWith(".ko.gz")) return gunzipSync(readFileSync(path));
  if (path.endsWith(".ko.xz")) return execFileSync(requireTool("xz"), ["-dc", path], { maxBuffer: 1 << 28 });
  if (path.endsWith(".ko.zst"))
    return execFileSync(requireTool("zstd"), ["-dcq", path], { maxBuffer: 1 << 28 });
  throw new Error(`unknown module compression: ${path}`);
}

const SIG_MAGIC = Buffer.from("~Module signature appended~\n");

/**
 * Drops the appended PKCS#7 signature of a kernel module. Checking it costs tens of milliseconds
 * of emulated RSA per module under TCG; Debian's kernel does not enforce signatures (outside
 * Secure Boot lockdown), it just notes "module verification failed" once and loads the module.
 */
export function stripModuleSignature(ko: Buffer): Buffer {
  if (ko.length < SIG_MAGIC.length + 12 || !ko.subarray(ko.length - SIG_MAGIC.length).equals(SIG_MAGIC))
    return ko;
  const info = ko.length - SIG_MAGIC.length - 12; // struct module_signature
  const signerLen = ko[info + 3] ?? 0;
  const keyIdLen = ko[info + 4] ?? 0;
  const sigLen = ko.readUInt32BE(info + 8);
  const end = info - sigLen - signerLen - keyIdLen;
  return end > 0 ? ko.subarray(0, end) : ko;
}

function assertStatic(busybox: string, data: Buffer): void {
  // A dynamically linked ELF has a PT_INTERP program header naming its loader.
  if (data.includes(Buffer.from("/lib64/ld-linux")) || data.includes(Buffer.from("/lib/ld-linux"))) {
    throw new Error(
      `${busybox} is dynamically linked; the initramfs needs a static one: apt-get install busybox-static`,
    );
  }
}

/**
 * Returns a busybox initramfs for `kernel`, building it on first use. It holds /init
 * (guest-init.sh), a static busybox and the kernel modules of GUEST_MODULE_GROUPS with their
 * dependencies (decompressed), listed by group in /etc/microvm/modules. Cached as <cacheDir>/initramfs-<key>.cpio, where key hashes the
 * kernel version and modules.dep, the busybox binary, the init script and the module list.
 * The image is not compressed: unpacking plain cpio is faster than decompressing under TCG.
 */
export function ensureInitramfs(opts: InitramfsOptions): Initramfs {
  const t0 = performance.now();
  const { kernel } = opts;
  const busybox = opts.busybox ?? requireTool("busybox");
  const cacheDir = opts.cacheDir ?? microVmCacheDir();
  const modules = resolveModules(
    kernel.modulesDir,
    opts.moduleGroups ?? GUEST_MODULE_GROUPS,
    GUEST_MODULE_PARAMS,
  );
  const init = guestInitScript();
  const busyboxData = readFileSync(busybox);
  const key = sha256(
    JSON.stringify({
      format: FORMAT_VERSION,
      kernel: kernel.version,
      modulesDep: sha256(readFileSync(join(kernel.modulesDir, "modules.dep"))),
      busybox: sha256(busyboxData),
      init: sha256(init),
      modules: modules.map((m) => [m.group, m.relPath, m.params]),
    }),
  ).slice(0, 24);
  const path = join(cacheDir, `initramfs-${key}.cpio`);
  if (existsSync(path)) return { path, key, built: false, buildMs: performance.now() - t0, modules };

  assertStatic(busybox, busyboxData);
  const kmods = `lib/modules/${kernel.version}`;
  const entries: CpioEntry[] = [
    { kind: "dir", path: "dev" },
    { kind: "chardev", path: "dev/console", major: 5, minor: 1, mode: 0o600 },
    { kind: "chardev", path: "dev/null", major: 1, minor: 3, mode: 0o666 },
    { kind: "file", path: "bin/busybox", data: busyboxData, mode: 0o755 },
    { kind: "symlink", path: "bin/sh", target: "busybox" },
    { kind: "file", path: "init", data: Buffer.from(init), mode: 0o755 },
  ];
  const list: string[] = [];
  for (const m of modules) {
    const rel = m.relPath.replace(/\.ko\.(xz|zst|gz)$/, ".ko");
    entries.push({
      kind: "file",
      path: `${kmods}/${rel}`,
      data: stripModuleSignature(readModule(join(kernel.modulesDir, m.relPath))),
    });
    list.push(`${m.group} ${rel}${m.params ? " " + m.params : ""}`);
  }
  entries.push({ kind: "file", path: "etc/microvm/modules", data: Buffer.from(list.join("\n") + "\n") });
  const image = writeCpio(withParentDirs(entries));
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, image);
  renameSync(tmp, path);
  pruneCache(cacheDir, "initramfs-", path);
  return { path, key, built: true, buildMs: performance.now() - t0, modules };
}
