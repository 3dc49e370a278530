// `pershome init`, `status` and `sticks` on real exFAT sticks on the host (loop device +
// mount.exfat-fuse): what they make, what they refuse and why, and that a refused stick is
// left exactly as it was.

import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { mountLayer } from "../support/mount.js";
import { run, waitFor } from "../support/run.js";
import { CLI, exfatHostStick, json, pershome, scratch } from "./helpers.js";

const dir = scratch("init");

describe("pershome init on an exFAT stick", () => {
  it("prepares a stick: /pershome with a valid marker, nothing else touched; a second run changes nothing", async () => {
    const s = await exfatHostStick(dir, "fresh", 32, "FRESH");
    writeFileSync(join(s.root, "holiday.jpg"), "not really a photo");
    const r = await pershome(["init", s.root, "--json"]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const o = json(r);
    expect(o).toMatchObject({
      ok: true,
      alreadyPrepared: false,
      formatVersion: 1,
      label: "FRESH",
      filesystem: "exFAT",
    });
    expect(o.message).toMatch(/ready for pershome/);
    const marker = JSON.parse(readFileSync(join(s.home, ".pershome/format"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(marker).toMatchObject({ format: "pershome", version: 1 });
    expect(readdirSync(s.root).sort()).toEqual(["holiday.jpg", "pershome"]);
    expect(readFileSync(join(s.root, "holiday.jpg"), "utf8")).toBe("not really a photo");

    const again = await pershome(["init", s.root]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/already prepared for pershome \(format 1\); nothing was changed/);
    expect(JSON.parse(readFileSync(join(s.home, ".pershome/format"), "utf8"))).toEqual(marker);

    // the layer mounts what init made
    const mnt = join(dir, "fresh-layer");
    mkdirSync(mnt, { recursive: true });
    const layer = await mountLayer(s.home, mnt);
    expect(readdirSync(mnt)).toEqual([]);
    await layer.stop();
    await s.detach();
  });

  it("takes the stick's device too, mounting it only for the moment (and --skel seeds the home through the layer)", async () => {
    const s = await exfatHostStick(dir, "bydev", 32, "BYDEV");
    await s.detach();
    const loop = (await run("losetup", ["-f", "--show", s.image])).stdout.trim();
    try {
      const skel = join(dir, "skel");
      mkdirSync(join(skel, ".config"), { recursive: true });
      writeFileSync(join(skel, ".bashrc"), "# bashrc\n");
      writeFileSync(join(skel, ".config/secret"), "s\n");
      chmodSync(join(skel, ".config/secret"), 0o600);
      const r = await pershome(["init", loop, "--skel-dir", skel, "--json"]);
      expect(r.code, r.stderr + r.stdout).toBe(0);
      expect(json(r)).toMatchObject({ ok: true, device: loop, seeded: 2 });
      // unmounted again afterwards
      expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(`${loop} `);
    } finally {
      await run("losetup", ["-d", loop]);
    }
    await s.attach();
    const mnt = join(dir, "bydev-layer");
    mkdirSync(mnt, { recursive: true });
    const layer = await mountLayer(s.home, mnt);
    try {
      expect(readFileSync(join(mnt, ".bashrc"), "utf8")).toBe("# bashrc\n");
      expect(statSync(join(mnt, ".config/secret")).mode & 0o7777).toBe(0o600);
    } finally {
      await layer.stop();
    }
    await s.detach();
  });

  it("refuses a read-only stick, saying so, and writes nothing", async () => {
    const s = await exfatHostStick(dir, "ro", 32);
    await s.detach();
    await s.attach({ readOnly: true });
    const r = await pershome(["init", s.root, "--json"]);
    expect(r.code).toBe(1);
    expect(json(r)).toMatchObject({ ok: false, reason: "read-only" });
    expect(String(json(r).message)).toMatch(/read-only.*nothing was changed/i);
    const text = await pershome(["init", s.root]);
    expect(text.stderr).toMatch(/write-protect/);
    await s.detach();
    await s.attach();
    expect(existsSync(s.home)).toBe(false);
    await s.detach();
  });

  it("refuses a full stick and leaves it as it was", async () => {
    const s = await exfatHostStick(dir, "full", 8);
    await run("sh", ["-c", `dd if=/dev/zero of="$1/filler" bs=64k 2>/dev/null; sync`, "sh", s.root]);
    const before = readdirSync(s.root).sort();
    const r = await pershome(["init", s.root, "--json"]);
    expect(r.code, r.stdout).toBe(1);
    expect(json(r)).toMatchObject({ ok: false, reason: "full" });
    expect(String(json(r).message)).toMatch(/full.*Nothing was changed.*Make room/);
    expect(readdirSync(s.root).sort()).toEqual(before);
    await s.detach();
  });

  it("refuses a stick prepared by a newer format, and a damaged marker, without touching them", async () => {
    const s = await exfatHostStick(dir, "newer", 32);
    mkdirSync(join(s.home, ".pershome"), { recursive: true });
    const newer = JSON.stringify({ format: "pershome", version: 99, created: "2030-01-01T00:00:00Z" }) + "\n";
    writeFileSync(join(s.home, ".pershome/format"), newer);
    for (const cmd of [["init"], ["check"], ["check", "--repair"], ["migrate", dir], ["status"]]) {
      const args = cmd[0] === "migrate" ? ["migrate", dir, s.root, "--json"] : [...cmd, s.root, "--json"];
      const r = await pershome(args);
      expect(r.code, `${args.join(" ")}: ${r.stdout}`).toBe(1);
      expect(json(r)).toMatchObject({ ok: false, reason: "newer-format" });
      expect(String(json(r).message)).toMatch(/newer pershome \(format 99.*Update pershome/);
    }
    expect(readFileSync(join(s.home, ".pershome/format"), "utf8")).toBe(newer);

    writeFileSync(join(s.home, ".pershome/format"), "\u0000\u0001garbage{");
    const g = await pershome(["init", s.root, "--json"]);
    expect(g.code).toBe(1);
    expect(json(g)).toMatchObject({ reason: "garbage-marker" });
    expect(String(json(g).message)).toMatch(/check --repair/);
    const c = await pershome(["check", s.root, "--json"]);
    expect(c.code).toBe(2);
    expect((json(c).findings as { kind: string }[]).map((f) => f.kind)).toContain("marker-garbage");
    const fix = await pershome(["check", "--repair", s.root]);
    expect(fix.code, fix.stdout + fix.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(s.home, ".pershome/format"), "utf8"))).toMatchObject({
      format: "pershome",
      version: 1,
    });
    expect((await pershome(["check", s.root])).code).toBe(0);
    await s.detach();
  });

  it("refuses what is not a stick: a folder on the computer's disk, a path that does not exist, a folder inside a stick", async () => {
    const plain = join(dir, "plain");
    mkdirSync(plain, { recursive: true });
    const r = await pershome(["init", plain, "--json"]);
    expect(r.code).toBe(1);
    expect(json(r)).toMatchObject({ reason: "not-fat" });
    expect(String(json(r).message)).toMatch(/not on a FAT32 or exFAT stick/);
    expect(existsSync(join(plain, "pershome"))).toBe(false);
    const forced = await pershome(["init", plain, "--force"]);
    expect(forced.code, forced.stderr).toBe(0);
    expect(existsSync(join(plain, "pershome/.pershome/format"))).toBe(true);

    const missing = await pershome(["init", join(dir, "no-such-stick"), "--json"]);
    expect(missing.code).toBe(1);
    expect(json(missing)).toMatchObject({ reason: "not-found" });

    const s = await exfatHostStick(dir, "inside", 32);
    mkdirSync(join(s.root, "folder"));
    const inside = await pershome(["init", join(s.root, "folder"), "--json"]);
    expect(inside.code).toBe(1);
    expect(json(inside)).toMatchObject({ reason: "not-a-stick" });
    await s.detach();
  });

  it("without STICK, lists the sticks and asks on the terminal (and without a terminal, says to name one)", async () => {
    const s = await exfatHostStick(dir, "ask", 32, "ASKME");
    const list = json(await pershome(["sticks", "--json"])).sticks as { device: string }[];
    const n = list.findIndex((c) => c.device === s.loop) + 1;
    expect(n).toBeGreaterThan(0);
    const noTty = await pershome(["init", "--json"]);
    expect(noTty.code).toBe(64);
    expect(json(noTty)).toMatchObject({ reason: "no-stick" });
    expect(String(json(noTty).message)).toMatch(
      new RegExp(`Which stick\\? Name it on the command line[^]*${s.loop}  "ASKME"`),
    );
    const r = await run(
      "script",
      ["-qec", `${process.execPath} ${CLI} init`, "/dev/null"],
      { input: `${s.loop}\n` } /* by device: other sticks may come and go */,
    );
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/Sticks found:/);
    expect(r.stdout).toMatch(
      new RegExp(`\\d+\\) ${s.loop}  "ASKME"  32\\.0 MiB exFAT, at ${s.root}, not prepared yet`),
    );
    expect(r.stdout).toMatch(/Which one \(1-\d+, or its device or name; Enter to cancel\)\?/);
    expect(r.stdout).toMatch(/"ASKME" .* is ready for pershome/);
    expect(existsSync(join(s.home, ".pershome/format"))).toBe(true);
    await s.detach();
  });

  it("--help has examples and exit codes; bad usage exits 64", async () => {
    for (const c of ["init", "status", "check", "migrate", "sticks", "gui"]) {
      const h = await pershome([c, "--help"]);
      expect(h.code).toBe(0);
      expect(h.stdout).toMatch(/Examples:/);
      expect(h.stdout).toMatch(/Exit codes: 0 done/);
    }
    expect((await pershome(["init", "--bogus"])).code).toBe(64);
    expect((await pershome(["migrate", "onlyone"])).code).toBe(64);
    expect((await pershome(["check", "--to", "x", "/tmp"])).code).toBe(64);
    const top = await pershome(["--help"]);
    expect(top.stdout).toMatch(/pershome check \[--repair\]/);
  });
});

describe("pershome status and sticks", () => {
  it("tells format, files, space, last use and whether the last mount ended cleanly", async () => {
    const s = await exfatHostStick(dir, "status", 32, "STAT");
    const before = await pershome(["status", s.root, "--json"]);
    expect(before.code).toBe(0);
    expect(json(before)).toMatchObject({ prepared: false, label: "STAT" });
    expect((await pershome(["status", s.root])).stdout).toMatch(/Prepared: +no .*pershome init/);

    expect((await pershome(["init", s.root])).code).toBe(0);
    const mnt = join(dir, "status-layer");
    mkdirSync(mnt, { recursive: true });
    const layer = await mountLayer(s.home, mnt);
    mkdirSync(join(mnt, "Documents"));
    writeFileSync(join(mnt, "Documents/a.txt"), "12345");
    writeFileSync(join(mnt, "b.txt"), "67");
    const inUse = await pershome(["status", s.root, "--json"]);
    expect(json(inUse).inUse).toEqual([mnt]);
    await layer.stop();

    const r = await pershome(["status", s.root, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const o = json(r);
    expect(o).toMatchObject({ prepared: true, files: 2, bytes: 7, problems: 0, filesystem: "exFAT" });
    expect((o.format as Record<string, unknown>).version).toBe(1);
    expect((o.space as { free: number; total: number }).total).toBeGreaterThan(30 * 1024 * 1024);
    expect((o.lastUse as { time: string }).time).toMatch(/^\d{4}-/);
    // the layer noted the mount and the clean unmount in .pershome/state
    expect(o).toMatchObject({ cleanlyUnmounted: true, lastUse: { host: hostname(), source: "state" } });

    // a daemon killed while mounted leaves the mount line alone: not clean
    const killed = await mountLayer(s.home, mnt);
    await killed.kill9();
    expect(json(await pershome(["status", s.root, "--json"]))).toMatchObject({ cleanlyUnmounted: false });

    // hand-written logs: a mount with no unmount after it, a torn last line
    const line = (obj: unknown): string => {
      const j = JSON.stringify(obj);
      return crc32(j).toString(16).padStart(8, "0") + " " + j + "\n";
    };
    const state = join(s.home, ".pershome/state");
    writeFileSync(
      state,
      line({ ev: "mount", t: "2025-03-01T10:00:00Z", host: "lab-12" }) +
        line({ ev: "umount", t: "2025-03-01T12:00:00Z" }),
    );
    expect(json(await pershome(["status", s.root, "--json"]))).toMatchObject({
      cleanlyUnmounted: true,
      lastUse: { host: "lab-12", source: "state" },
    });
    writeFileSync(
      state,
      readFileSync(state, "utf8") +
        line({ ev: "mount", t: "2025-03-02T09:00:00Z", host: "library-3" }) +
        "0badf00d {torn",
    );
    const unclean = await pershome(["status", s.root]);
    expect(unclean.stdout).toMatch(
      /Unmounted cleanly: no: the last mount \(on library-3\) was not ended cleanly/,
    );
    expect(unclean.stdout).toMatch(/Home: +2 files/);
    expect(unclean.stdout).toMatch(/Health: +in order/);

    const sticks = await pershome(["sticks", "--json"]);
    expect(sticks.code).toBe(0);
    const mine = (
      json(sticks).sticks as { device: string; label: string; fstype: string; prepared: boolean }[]
    ).find((c) => c.device === s.loop);
    expect(mine).toMatchObject({ label: "STAT", fstype: "exfat", prepared: true });
    await s.detach();
  });
});

describe("a stick pulled while init copies the starting files", () => {
  it("says the stick stopped answering, and once it is back the stick still mounts and checks clean", async () => {
    const skel = join(dir, "bigskel");
    mkdirSync(skel, { recursive: true });
    const mk = await run("sh", [
      "-c",
      `cd "$1" && for i in $(seq 1 150); do head -c 262144 /dev/urandom > .f$i; done`,
      "sh",
      skel,
    ]);
    expect(mk.code).toBe(0);
    const s = await exfatHostStick(dir, "pullinit", 128);
    const child = spawn(process.execPath, [CLI, "init", s.root, "--skel-dir", skel, "--json"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    const exited = new Promise<number | null>((res) => child.once("exit", (c) => res(c)));
    const some = await waitFor(
      () => {
        try {
          return readdirSync(s.home).filter((n) => n.startsWith(".f")).length >= 5;
        } catch {
          return false;
        }
      },
      60_000,
      20,
    );
    expect(some).toBe(true);
    await s.pull();
    expect(await exited).toBe(1);
    const o = JSON.parse(out) as { reason: string; message: string };
    expect(o.reason, out).toBe("pulled");
    expect(o.message).toMatch(/stopped answering.*pulled out\?.*Plug it back in/);
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toMatch(/pershome-layer-/);

    await s.attach();
    // whatever got onto the stick: it is a usable pershome stick or none at all, never a broken one
    if (existsSync(s.home)) {
      const fix = await pershome(["check", "--repair", s.root]);
      expect(fix.code, fix.stdout + fix.stderr).toBe(0);
      expect((await pershome(["check", s.root])).code).toBe(0);
      const again = await pershome(["init", s.root, "--json"]);
      expect(again.code).toBe(0);
    } else {
      expect((await pershome(["init", s.root])).code).toBe(0);
    }
    const mnt = join(dir, "pullinit-layer");
    mkdirSync(mnt, { recursive: true });
    const layer = await mountLayer(s.home, mnt);
    await layer.stop();
    await s.detach();
  });
});
