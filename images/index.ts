// buildLabImages(): the LTSP server root and the netbooted client's boot files, cached under
// .cache/lab/ by keys of their inputs. The contract with the lab harness: docs/lab-images.md.
import { existsSync, linkSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { findGuestKernel } from "../lab/microvm/kernel.js";
import { ensureApp, ensureDeb } from "./app.js";
import { baseKey, ensureBase } from "./base.js";
import { buildInitrd } from "./initrd.js";
import { ensureBootstrap } from "./rootfs.js";
import { ensureServer, serverKey } from "./server.js";
import { cached, keyOf, labCacheDir, type Log, run, withCacheLock } from "./util.js";

export interface LabImages {
  /** A debootstrap'd bookworm root with Debian's ltsp, dnsmasq, busybox httpd, sshd, the users. */
  serverRoot: string;
  /** Bind-mount read-only at /srv/http/boot in the server: boot.ipxe, vmlinuz, initrd.img, base.squashfs, app.squashfs. */
  bootDir: string;
  /** Cache keys, for logs. */
  keys: { server: string; base: string; app: string };
}

export interface BuildOptions {
  log?: (line: string) => void;
  cacheDir?: string;
}

/** The address the server has on br-lab (the harness makes the bridge). */
export const SERVER_IP = "10.77.0.1";
export const BOOT_URL = `http://${SERVER_IP}/boot`;

/** The kernel command line of a lab client (boot.ipxe). */
export const CLIENT_CMDLINE = [
  "initrd=initrd.img",
  "initrd=ltsp.img",
  "console=ttyS0,115200",
  "net.ifnames=0",
  "panic=-1",
  "mitigations=off",
  `lab.base=${BOOT_URL}/base.squashfs`,
  `lab.app=${BOOT_URL}/app.squashfs`,
].join(" ");

export function bootIpxe(): string {
  return [
    "#!ipxe",
    "echo pershome lab client ${net0/mac}: loading the kernel and initrd over HTTP",
    `kernel ${BOOT_URL}/vmlinuz ${CLIENT_CMDLINE}`,
    `initrd ${BOOT_URL}/initrd.img`,
    // LTSP's own: the server's users, ltsp.conf and LTSP's client code ("ltsp initrd"), over TFTP
    `initrd tftp://${SERVER_IP}/ltsp/ltsp.img`,
    "boot",
    "",
  ].join("\n");
}

export async function buildLabImages(opts: BuildOptions = {}): Promise<LabImages> {
  const log: Log = opts.log ?? ((l) => process.stderr.write(l + "\n"));
  const cacheDir = labCacheDir(opts.cacheDir);
  return withCacheLock(cacheDir, log, () => build(cacheDir, log));
}

async function build(cacheDir: string, log: Log): Promise<LabImages> {
  const t0 = performance.now();
  const kernel = findGuestKernel(process.env.PERSHOME_LAB_KERNEL);
  const sKey = serverKey();
  const bKey = baseKey(kernel);
  // the shared debootstrap only when a root must be built (it is not raced by the two builds)
  if (
    !existsSync(join(cacheDir, `server-${sKey}`, ".complete")) ||
    !existsSync(join(cacheDir, `base-${bKey}`, ".complete"))
  )
    await ensureBootstrap(cacheDir, log);
  const [server, base, deb] = await Promise.all([
    ensureServer(cacheDir, log),
    ensureBase(cacheDir, log, kernel),
    ensureDeb(cacheDir, log),
  ]);
  const app = await ensureApp(cacheDir, log, base, deb.deb);
  const initrd = buildInitrd(kernel);
  const bootKey = keyOf({
    base: base.key,
    app: app.key,
    initrd: initrd.key,
    kernel: kernel.version,
    ipxe: bootIpxe(),
  });
  const boot = await cached(cacheDir, "boot", bootKey, log, async (dir) => {
    writeFileSync(join(dir, "boot.ipxe"), bootIpxe());
    writeFileSync(join(dir, "initrd.img"), initrd.data);
    await run(log, "[boot]", "cp", [kernel.image, join(dir, "vmlinuz")]);
    linkSync(join(base.dir, "base.squashfs"), join(dir, "base.squashfs"));
    linkSync(join(app.dir, "app.squashfs"), join(dir, "app.squashfs"));
  });
  mkdirSync(boot.dir, { recursive: true });
  log(`[lab-images] ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return {
    serverRoot: join(server.dir, "root"),
    bootDir: boot.dir,
    keys: { server: server.key, base: base.key, app: app.key },
  };
}
