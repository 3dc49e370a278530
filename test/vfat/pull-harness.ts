// What the pull tests on FAT32 share: the guest program's head (the stick mounted by the kernel's
// vfat, the layer mounted on it, two small helpers) and one boot that runs the test's guest
// program on two sticks, mounted without and with vfat's `flush` option (the login hook mounts
// with it). The test then reads the images on the host.

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "vitest";
import { MicroVmError, runInVm } from "../../lab/microvm/index.js";
import { makeFat32Stick } from "../../lab/sticks/index.js";
import { REPO } from "../support/mount.js";
import { tail } from "../support/run.js";

/**
 * The start of a guest program: after it, `m` is the layer's mount, `s` the stick, `C`
 * fs.constants, `write(p, data)` writes and fsyncs a file, `fsyncPath(p, flags)` fsyncs a path.
 */
export const GUEST_HEAD = `
import fs from "node:fs";
import { execFileSync } from "node:child_process";
const [cli, dev, opts, dir] = process.argv.slice(2);
const C = fs.constants;
for (const d of ["s", "m"]) fs.mkdirSync(dir + "/" + d, { recursive: true });
execFileSync("mount", ["-t", "vfat", "-o", opts, dev, dir + "/s"]);
fs.mkdirSync(dir + "/s/pershome");
execFileSync(process.execPath, [cli, "mount", dir + "/s/pershome", dir + "/m"]);
const m = dir + "/m", s = dir + "/s";
const fsyncPath = (p, flags) => { const fd = fs.openSync(p, flags); fs.fsyncSync(fd); fs.closeSync(fd); };
const write = (p, data) => { const fd = fs.openSync(p, C.O_WRONLY | C.O_CREAT | C.O_TRUNC, 0o644); fs.writeSync(fd, data); fs.fsyncSync(fd); fs.closeSync(fd); };
`;

export interface PulledStick {
  /** vfat's mount options in the guest */
  opts: string;
  image: string;
}

/** Runs GUEST_HEAD + `body` on two fresh FAT32 sticks in one boot; the boot must succeed. */
export async function runOnTwoSticks(
  work: string,
  body: string,
  o: { sizeMb: number; timeoutMs: number },
): Promise<PulledStick[]> {
  writeFileSync(join(work, "guest.mjs"), GUEST_HEAD + body);
  const opts = ["utf8,shortname=mixed", "utf8,shortname=mixed,flush"];
  const images = await Promise.all(opts.map((_, i) => makeFat32Stick(join(work, `s${i}.img`), o.sizeMb)));
  const cli = join(REPO, "dist/src/cli/main.js");
  const r = await runInVm({
    command: opts.map((op, i) => `node /w/guest.mjs ${cli} /dev/sd${"ab"[i]} ${op} /run/t${i}`).join(" && "),
    sticks: images.map((image) => ({ image })),
    shares: [{ hostPath: work, guestPath: "/w", readOnly: true }],
    cwd: REPO,
    timeoutMs: o.timeoutMs,
  }).catch((err: unknown) => {
    // a boot that never finished says why only on the guest's console
    if (err instanceof MicroVmError && err.consoleTail)
      throw new Error(`${err.message}\nthe guest's console, last lines:\n${err.consoleTail}`);
    throw err;
  });
  expect(r.exitCode, tail(r.output, 4000)).toBe(0);
  return images.map((image, i) => ({ opts: opts[i]!, image }));
}
