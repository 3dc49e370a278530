// `pershome migrate` on real exFAT sticks: a tree with every kind of file comes back exactly
// through a fresh mount; Ctrl-C and a pulled stick are resumed; a stick too small is refused.

import { spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { mountLayer } from "../support/mount.js";
import { run, waitFor } from "../support/run.js";
import {
  CLI,
  describeTree,
  exfatHostStick,
  json,
  makeEveryKindTree,
  pershome,
  scratch,
  xattrDump,
} from "./helpers.js";

const dir = scratch("migrate");

/** Many medium files, so that a copy takes a few seconds. */
async function bulkTree(t: string, files: number, kb: number): Promise<void> {
  const r = await run("sh", [
    "-c",
    `mkdir -p "$1/bulk" && cd "$1/bulk" && for i in $(seq 1 ${files}); do head -c ${kb * 1024} /dev/urandom > f$i; done`,
    "sh",
    t,
  ]);
  expect(r.code, r.stderr).toBe(0);
}

/** Starts migrate in the background; resolves its result; `files()` counts what reached the stick. */
function startMigrate(
  src: string,
  root: string,
): { done: Promise<{ code: number | null; stdout: string; stderr: string }>; pid: number } {
  const child = spawn(process.execPath, [CLI, "migrate", src, root, "--json"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((res) =>
    child.once("exit", (code) => res({ code, stdout, stderr })),
  );
  return { done, pid: child.pid! };
}

function countOnStick(home: string): number {
  try {
    return readdirSync(join(home, "bulk")).filter((n) => !n.startsWith(".pershome")).length;
  } catch {
    return 0;
  }
}

describe("pershome migrate onto an exFAT stick", () => {
  it("copies every kind of file and it all comes back through a fresh mount: modes, links, fifo, ns times, xattrs, odd names", async () => {
    const src = join(dir, "every");
    await makeEveryKindTree(src);
    const s = await exfatHostStick(dir, "every", 64);
    expect((await pershome(["init", s.root])).code).toBe(0);
    const r = await pershome(["migrate", src, s.root]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Done: \d+ copied.*The copy was verified/);
    expect(r.stderr).toMatch(/copying: \d+\/\d+ files, .* \(100%\)/); // plain progress lines off a terminal
    await s.detach();

    // a fresh mount (stick out and in again, new daemon)
    await s.attach();
    const mnt = join(dir, "every-layer");
    mkdirSync(mnt, { recursive: true });
    const layer = await mountLayer(s.home, mnt);
    try {
      const want = await describeTree(src);
      const got = await describeTree(mnt);
      expect(got).toEqual(want);
      expect(got.join("\n")).toContain("./plain.txt f 644 1 6 1732700000.1234567890");
      expect(got.join("\n")).toMatch(/\.\/h1 f 644 3 12 /);
      expect(got.join("\n")).toMatch(/\.\/dangling l 777 1 14 .* does\/not\/exist/);
      expect(await xattrDump(mnt)).toEqual(await xattrDump(src));
      expect(await xattrDump(mnt)).toContain("user.color=0x626c7565");
      expect(statSync(join(mnt, "h1")).ino).toBe(statSync(join(mnt, "sub/h3")).ino);
      expect(readFileSync(join(mnt, "big.bin")).equals(readFileSync(join(src, "big.bin")))).toBe(true);
      expect(readFileSync(join(mnt, "notes: draft?.txt"), "utf8")).toBe("a");
      expect(readFileSync(join(mnt, "Makefile"), "utf8")).toBe("M");
      expect(readFileSync(join(mnt, "makefile"), "utf8")).toBe("m");
      expect(statSync(join(mnt, "fifo")).isFIFO()).toBe(true);
    } finally {
      await layer.stop();
    }
    // a second run finds everything there already
    const again = await pershome(["migrate", src, s.root, "--json"]);
    expect(again.code, again.stdout).toBe(0);
    expect(json(again)).toMatchObject({ ok: true, copied: 0, verified: true, mismatches: [] });
    expect(json(again).alreadyThere).toBeGreaterThan(10);
    expect((await pershome(["check", s.root])).code).toBe(0);
    await s.detach();
  });

  it("stops cleanly on Ctrl-C (exit 130) and the same command continues where it stopped", async () => {
    const src = join(dir, "bulk-int");
    await bulkTree(src, 120, 384);
    const s = await exfatHostStick(dir, "int", 128);
    expect((await pershome(["init", s.root])).code).toBe(0);
    const m = startMigrate(src, s.root);
    expect(await waitFor(() => countOnStick(s.home) >= 5, 60_000, 20)).toBe(true);
    process.kill(m.pid, "SIGINT");
    const r = await m.done;
    expect(r.code, r.stdout + r.stderr).toBe(130);
    expect(json({ stdout: r.stdout, stderr: r.stderr, code: 130, command: "migrate" })).toMatchObject({
      ok: false,
      reason: "interrupted",
    });
    const partial = countOnStick(s.home);
    expect(partial).toBeLessThan(120);
    // no mount left behind
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toMatch(/pershome-layer-/);

    const resumed = await pershome(["migrate", src, s.root, "--json"]);
    expect(resumed.code, resumed.stdout + resumed.stderr).toBe(0);
    const o = json(resumed);
    expect(o).toMatchObject({ ok: true, verified: true, mismatches: [] });
    expect(o.alreadyThere as number).toBeGreaterThanOrEqual(partial - 1);
    expect(o.copied as number).toBeLessThanOrEqual(120 - partial + 1);
    expect(countOnStick(s.home)).toBe(120);
    await s.detach();
  });

  it("a stick pulled in the middle: a clear message, and after plugging it back in the copy completes", async () => {
    const src = join(dir, "bulk-pull");
    await bulkTree(src, 100, 384);
    const s = await exfatHostStick(dir, "pull", 128);
    expect((await pershome(["init", s.root])).code).toBe(0);
    const m = startMigrate(src, s.root);
    expect(await waitFor(() => countOnStick(s.home) >= 5, 60_000, 20)).toBe(true);
    await s.pull();
    const r = await m.done;
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const o = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(o).toMatchObject({ ok: false, reason: "pulled" });
    expect(String(o.message)).toMatch(/pulled out\?.*Plug it back in and run the same command again/);

    await s.attach();
    const resumed = await pershome(["migrate", src, s.root, "--json"]);
    expect(resumed.code, resumed.stdout + resumed.stderr).toBe(0);
    expect(json(resumed)).toMatchObject({ ok: true, verified: true, mismatches: [] });
    expect(countOnStick(s.home)).toBe(100);
    // whatever the pull left in the metadata, check --repair tidies and a second check is clean
    const fix = await pershome(["check", "--repair", s.root]);
    expect(fix.code, fix.stdout).toBe(0);
    expect((await pershome(["check", s.root])).stdout).toMatch(/Everything is in order/);
    await s.detach();
  });

  it("refuses a stick too small for the copy before copying anything", async () => {
    const src = join(dir, "toobig");
    await bulkTree(src, 20, 1024);
    const s = await exfatHostStick(dir, "small", 12);
    expect((await pershome(["init", s.root])).code).toBe(0);
    writeFileSync(join(s.home, "keep.txt"), "mine");
    const r = await pershome(["migrate", src, s.root, "--json"]);
    expect(r.code).toBe(1);
    expect(json(r)).toMatchObject({ ok: false, reason: "full" });
    expect(String(json(r).message)).toMatch(/free, but copying .* needs about .* Make room/);
    expect(
      readdirSync(s.home)
        .filter((n) => !n.startsWith(".pershome"))
        .sort(),
    ).toEqual(["keep.txt"]);
    await s.detach();
  });

  it("draws a progress bar with bytes, files and time left on a terminal", async () => {
    const src = join(dir, "tty-src");
    mkdirSync(src, { recursive: true });
    await bulkTree(src, 40, 512);
    const plain = join(dir, "tty-stick");
    mkdirSync(plain, { recursive: true });
    expect((await pershome(["init", plain, "--force"])).code).toBe(0);
    // script(1) gives the command a terminal
    const r = await run("script", [
      "-qec",
      `${process.execPath} ${CLI} migrate ${src} ${plain} --force`,
      "/dev/null",
    ]);
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/\rcopying \[#*-*\] +\d+% +[\d.]+ \w+\/20\.0 MiB +\d+\/41 files/);
    expect(r.stdout).toMatch(/\rverifying \[/);
    expect(r.stdout).toMatch(/copying: 41\/41 files, 20\.0 MiB of 20\.0 MiB \(100%\)/);
  });

  it("refuses an unprepared stick and a missing source, saying what to do", async () => {
    const s = await exfatHostStick(dir, "unprep", 32);
    const r = await pershome(["migrate", dir, s.root, "--json"]);
    expect(r.code).toBe(1);
    expect(json(r)).toMatchObject({ reason: "not-prepared" });
    expect(String(json(r).message)).toMatch(/pershome init/);
    const n = await pershome(["migrate", join(dir, "nothing-here"), s.root, "--json"]);
    expect(json(n)).toMatchObject({ reason: "source" });
    await s.detach();
  });
});
