import { mustRun, runTool, runToolBuffer, utf8LocaleName } from "./run.js";

// mtools reads FAT images without mounting them (no root, no kernel driver). Long names are
// stored as UTF-16 and converted to the *locale's* charset: under LANG=C, "héllo" prints as
// "h_llo" and cannot be looked up, so every call runs under a UTF-8 locale.
// MTOOLS_SKIP_CHECK=1 stops mtools refusing images whose geometry it finds odd.

function mtoolsEnv(): Record<string, string> {
  const loc = utf8LocaleName();
  return { LC_ALL: loc, LANG: loc, MTOOLS_SKIP_CHECK: "1" };
}

/** "::/a/b" for "/a/b" or "a/b". */
function mpath(p: string): string {
  return p.startsWith("::") ? p : `::/${p.replace(/^\/+/, "")}`;
}

/** `mdir -i img ::/path`: the human-readable listing. */
export async function mdir(image: string, path = "/"): Promise<string> {
  return (await mustRun("mdir", ["-i", image, mpath(path)], mtoolsEnv())).stdout;
}

/** Names (long names when there are) in a directory, without "." and "..". */
export async function mdirNames(image: string, path = "/"): Promise<string[]> {
  // -b: one full "::/dir/name" per line (directories end with "/").
  const out = (await mustRun("mdir", ["-b", "-i", image, mpath(path)], mtoolsEnv())).stdout;
  return out
    .split("\n")
    .filter(Boolean)
    .map((l) => l.replace(/\/$/, ""))
    .map((l) => l.slice(l.lastIndexOf("/") + 1))
    .filter((n) => n !== "." && n !== "..");
}

/** `mtype`: a file's contents, as bytes. */
export async function mtype(image: string, path: string): Promise<Buffer> {
  return runToolBuffer("mtype", ["-i", image, mpath(path)], mtoolsEnv());
}

/** Copies a host file into the image. */
export async function mcopyTo(image: string, hostFile: string, path: string): Promise<void> {
  await mustRun("mcopy", ["-o", "-i", image, hostFile, mpath(path)], mtoolsEnv());
}

/** Copies a file from the image to the host. */
export async function mcopyFrom(image: string, path: string, hostFile: string): Promise<void> {
  await mustRun("mcopy", ["-o", "-n", "-i", image, mpath(path), hostFile], mtoolsEnv());
}

/** Creates a directory in the image. */
export async function mmd(image: string, path: string): Promise<void> {
  await mustRun("mmd", ["-i", image, mpath(path)], mtoolsEnv());
}

/** True if `path` exists in the image. */
export async function mexists(image: string, path: string): Promise<boolean> {
  return (await runTool("mdir", ["-b", "-i", image, mpath(path)], mtoolsEnv())).exitCode === 0;
}
