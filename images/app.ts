// The thin layer (app.squashfs): the project's own .deb installed with dpkg -i over the base root
// (an overlay: base as lower, an empty upper, postinst runs as on a real machine), plus the lab
// agent; the upper directory is what gets squashed.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cached, type Entry, filesHash, IMAGES_SRC, keyOf, type Log, ROOT, run, sha256 } from "./util.js";
import { squash } from "./base.js";
import { provision } from "./rootfs.js";

/** What goes into the .deb (ci/build-deb.sh reads these; lab/, test/, images/ do not matter). */
export const PACKAGE_INPUTS = [
  "src",
  "bin",
  "data",
  "docs",
  "packaging",
  "package.json",
  "package-lock.json",
  "ci/build-deb.sh",
  "tsconfig.json",
  "tsconfig.src.json",
];

/**
 * A key of the package's source tree: `git ls-files -s` of PACKAGE_INPUTS (blob hashes of the
 * index) plus the contents of every modified or untracked file there, plus the host's node.
 */
export function treeKey(root = ROOT): string {
  const git = (args: string[]): string =>
    execFileSync("git", ["-C", root, ...args], { encoding: "utf8", maxBuffer: 1 << 28 });
  const index = git(["ls-files", "-s", "--", ...PACKAGE_INPUTS]);
  const dirty = git(["ls-files", "-m", "-o", "--exclude-standard", "-z", "--", ...PACKAGE_INPUTS])
    .split("\0")
    .filter(Boolean)
    .sort();
  const parts = [...new Set(dirty)].map((p) => {
    const abs = join(root, p);
    return `${p}\0${existsSync(abs) ? sha256(readFileSync(abs)) : "deleted"}`;
  });
  return keyOf({ index: sha256(index), dirty: parts, node: process.version });
}

/** <entry>/pershome.deb, built by ci/build-deb.sh from the working tree, cached by treeKey(). */
export async function ensureDeb(cacheDir: string, log: Log): Promise<Entry & { deb: string }> {
  const e = await cached(cacheDir, "deb", treeKey(), log, async (dir) => {
    const out = join(dir, "out");
    mkdirSync(out);
    await run(log, "[deb]", "bash", ["ci/build-deb.sh"], { env: { OUT: out } });
    const debs = readdirSync(out).filter((f) => f.endsWith(".deb"));
    if (debs.length !== 1 || !debs[0]) throw new Error(`ci/build-deb.sh made ${debs.length} .debs in ${out}`);
    copyFileSync(join(out, debs[0]), join(dir, "pershome.deb"));
  });
  return { ...e, deb: join(e.dir, "pershome.deb") };
}

export function appKey(baseKey: string, debSha: string): string {
  return keyOf({
    base: baseKey,
    deb: debSha,
    agent: filesHash(["agent/agent.cjs", "agent/pershome-lab-agent.service", "scripts/app-install.sh"]),
  });
}

/** <entry>/app.squashfs: the upper layer of installing the .deb and the agent over the base root. */
export async function ensureApp(cacheDir: string, log: Log, base: Entry, deb: string): Promise<Entry> {
  const debSha = sha256(readFileSync(deb));
  return cached(cacheDir, "app", appKey(base.key, debSha), log, async (dir) => {
    const upper = join(dir, "upper");
    const work = join(dir, "work");
    const merged = join(dir, "merged");
    const inputs = join(dir, "inputs");
    for (const d of [upper, work, merged, inputs]) mkdirSync(d);
    copyFileSync(deb, join(inputs, "pershome.deb"));
    // plain overlay semantics (no metacopy/redirects/index): the upper dir must stand on its own
    // as a layer of the client's overlay
    await run(log, "[app]", "mount", [
      "-t",
      "overlay",
      "overlay",
      "-o",
      `lowerdir=${join(base.dir, "root")},upperdir=${upper},workdir=${work},metacopy=off,redirect_dir=off,index=off,xino=off`,
      merged,
    ]);
    try {
      await provision(merged, "/provision/scripts/app-install.sh", log, "[app]", inputs);
    } finally {
      await run(log, "[app]", "umount", [merged]);
    }
    await squash(upper, join(dir, "app.squashfs"), log, "[app]");
    await run(log, "[rm]", "rm", ["-rf", upper, work, merged, inputs]);
  });
}

export const AGENT_FILES = join(IMAGES_SRC, "agent");
