/**
 * Loads the libfuse3 low-level addon (src/native/fuse_ll.c, built by node-gyp into
 * src/native/build/Release/pershome_fuse.node) and exposes it with its types.
 *
 * Works from both src/native/ (vitest) and dist/src/native/ (compiled): it walks up from
 * this module to the package root that holds the build output.
 * PERSHOME_FUSE_ADDON=/path/to/pershome_fuse.node overrides the location (used to run
 * an AddressSanitizer build).
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FuseAddon } from "./types.js";

export * from "./types.js";

const ADDON_REL = join("src", "native", "build", "Release", "pershome_fuse.node");

/** Absolute path of the built addon; throws if it has not been built. */
export function addonPath(): string {
  const override = process.env["PERSHOME_FUSE_ADDON"];
  if (override) return override;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, ADDON_REL);
    if (existsSync(candidate)) return candidate;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  throw new Error(
    `pershome_fuse.node not found above ${fileURLToPath(import.meta.url)}; ` +
      "build it with: node-gyp rebuild --directory src/native (npm run build does this)",
  );
}

const require = createRequire(import.meta.url);

export const fuse: FuseAddon = require(addonPath()) as FuseAddon;
