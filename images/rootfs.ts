// The Debian roots: one debootstrap (minbase bookworm) shared by the server and the client base,
// copied and provisioned with a script run inside `systemd-nspawn` (not booted).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { cached, debianMirror, type Entry, IMAGES_SRC, keyOf, type Log, run } from "./util.js";

export const SUITE = "bookworm";
/** Bump when the bootstrap step changes in a way its inputs do not show. */
const BOOTSTRAP_FORMAT = 1;

function debootstrapVersion(): string {
  try {
    const m = /^VERSION=["']?([^"'\n]+)/m.exec(readFileSync("/usr/sbin/debootstrap", "utf8"));
    return m?.[1] ?? "?";
  } catch {
    return "missing";
  }
}

export function bootstrapKey(): string {
  return keyOf({
    f: BOOTSTRAP_FORMAT,
    suite: SUITE,
    mirror: debianMirror(),
    debootstrap: debootstrapVersion(),
  });
}

/** <entry>/root: `debootstrap --variant=minbase bookworm`, untouched. */
export async function ensureBootstrap(cacheDir: string, log: Log): Promise<Entry> {
  return cached(cacheDir, "bootstrap", bootstrapKey(), log, async (dir) => {
    await run(log, "[debootstrap]", "debootstrap", [
      "--variant=minbase",
      SUITE,
      join(dir, "root"),
      debianMirror(),
    ]);
  });
}

/** cp -a of the bootstrap root (reflinks where the filesystem has them). */
export async function copyRoot(from: string, to: string, log: Log): Promise<void> {
  await run(log, "[cp]", "cp", ["-a", "--reflink=auto", from, to]);
}

/**
 * Runs `bash <script>` inside the root with systemd-nspawn (no boot, the host's network for apt),
 * images/ bound read-only at /provision and `inputs` (if any) at /provision-in.
 */
export async function provision(
  root: string,
  script: string,
  log: Log,
  prefix: string,
  inputs?: string,
): Promise<void> {
  await run(log, prefix, "systemd-nspawn", [
    "--quiet",
    "--register=no",
    "--keep-unit",
    "--console=pipe",
    "--resolv-conf=replace-host",
    "--timezone=off",
    "--link-journal=no",
    "-D",
    root,
    `--bind-ro=${IMAGES_SRC}:/provision`,
    ...(inputs ? [`--bind-ro=${inputs}:/provision-in`] : []),
    "--setenv=DEBIAN_FRONTEND=noninteractive",
    "/bin/bash",
    script,
  ]);
}
