import { existsSync, readdirSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The project root: the nearest directory above this module holding package.json. */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json"))) return dir;
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}

/** Where built artefacts (initramfs images) are kept: $PERSHOME_MICROVM_CACHE or <project>/.cache/microvm. */
export function microVmCacheDir(): string {
  return process.env.PERSHOME_MICROVM_CACHE ?? join(projectRoot(), ".cache", "microvm");
}

/**
 * Deletes files in `dir` named `<prefix>*` except `keep`, once they are over an hour old (an
 * older image may still be about to be handed to a QEMU started by a concurrent run).
 */
export function pruneCache(dir: string, prefix: string, keep: string, maxAgeMs = 3_600_000): void {
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const now = Date.now();
  for (const n of names) {
    const p = `${dir}/${n}`;
    if (!n.startsWith(prefix) || p === keep) continue;
    try {
      if (now - statSync(p).mtimeMs > maxAgeMs) rmSync(p, { force: true });
    } catch {
      /* raced with another pruner */
    }
  }
}
