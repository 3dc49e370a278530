// The LTSP server root: debootstrap + Debian's ltsp, dnsmasq, ipxe, busybox httpd, sshd, the users.
import { join } from "node:path";
import { bootstrapKey, copyRoot, ensureBootstrap, provision } from "./rootfs.js";
import { cached, dirHash, type Entry, filesHash, IMAGES_SRC, keyOf, type Log } from "./util.js";

export function serverKey(): string {
  return keyOf({
    bootstrap: bootstrapKey(),
    scripts: filesHash(["scripts/server-provision.sh", "scripts/add-users.sh", "scripts/lab-users"]),
    server: dirHash(join(IMAGES_SRC, "server")),
  });
}

/** <entry>/root: the server's root, for `systemd-nspawn -D <root> -b`. */
export async function ensureServer(cacheDir: string, log: Log): Promise<Entry> {
  return cached(cacheDir, "server", serverKey(), log, async (dir) => {
    const boot = await ensureBootstrap(cacheDir, log);
    await copyRoot(join(boot.dir, "root"), join(dir, "root"), log);
    await provision(join(dir, "root"), "/provision/scripts/server-provision.sh", log, "[server]");
  });
}
