// The command-line contract: `mount … --foreground` prints the ready line, `umount`, SIGTERM and
// an external umount all flush and end the daemon with status 0; the format marker is written.

import { spawn } from "node:child_process";
import { chmod, mkdir, readFile, readdir, stat, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { useLayer } from "../support/fixture.js";
import { lowerKinds, makeWorkDir } from "../support/lower.js";
import { isMounted, mountAt } from "../support/mountinfo.js";
import { CLI, mountLayer } from "../support/mount.js";
import { PYTHON, python, run } from "../support/run.js";

describe.each(lowerKinds())("the pershome command on a %s lower", (kind) => {
  const t = useLayer(kind, "cli", { noMount: true });

  it("writes the format marker on the first mount", async () => {
    await t.mount();
    try {
      const marker = JSON.parse(await readFile(t.low(".pershome", "format"), "utf8")) as Record<
        string,
        unknown
      >;
      expect(marker).toMatchObject({ format: "pershome", version: 1 });
      expect(Number.isNaN(Date.parse(String(marker.created)))).toBe(false);
      expect(mountAt(t.mnt)?.fsType).toMatch(/^fuse/);
    } finally {
      await t.unmount();
    }
  });

  for (const how of ["cli", "sigterm", "umount"] as const) {
    it(`ends with status 0 and no mount left when stopped by ${how === "cli" ? "`pershome umount`" : how === "sigterm" ? "SIGTERM" : "an external umount"}, having flushed what was written`, async () => {
      await t.mount();
      const d = `stop-${how}`;
      await mkdir(t.p(d));
      // Written and not fsync'd: the stop must flush data and metadata.
      await writeFile(t.p(d, "data"), `written before ${how}`);
      await chmod(t.p(d, "data"), 0o600);
      const r = await t.unmount(how);
      expect({ code: r.code, signal: r.signal, forced: r.forced, leftMounted: r.leftMounted }).toEqual({
        code: 0,
        signal: null,
        forced: false,
        leftMounted: false,
      });
      if (r.umount) expect(r.umount.code, r.umount.stderr).toBe(0);
      expect(isMounted(t.mnt)).toBe(false);
      await t.lower.detach();
      await t.lower.attach();
      await t.mount();
      try {
        expect(await readFile(t.p(d, "data"), "utf8")).toBe(`written before ${how}`);
        expect((await stat(t.p(d, "data"))).mode & 0o7777).toBe(0o600);
      } finally {
        await t.unmount();
      }
    });
  }

  it("mounts over a directory that already has files in it (a home), hiding them", async () => {
    const home = join(makeWorkDir("home"), "user");
    await mkdir(home);
    await writeFile(join(home, ".bashrc"), "local");
    const layer = await mountLayer(t.lower.dir, home);
    try {
      expect(await readdir(home)).not.toContain(".bashrc");
    } finally {
      const r = await layer.stop();
      expect(r.code).toBe(0);
    }
    expect(await readFile(join(home, ".bashrc"), "utf8")).toBe("local");
  });

  it("polls for the next request by default; --poll-us 0 never does; a bad --poll-us is a usage error", async () => {
    const polling = async (extraArgs: string[]): Promise<{ polls: number; caught: number }> => {
      const layer = await mountLayer(t.lower.dir, t.mnt, { extraArgs, env: { PERSHOME_FUSE_COUNTS: "1" } });
      // 300 small files from one process: requests follow each other closely. The daemon and
      // the writer on CPUs of their own: a writer on the daemon's CPU finds it with its next
      // request already waiting, with nothing to poll for (docs/benchmarks.md, "Fourteenth round").
      const writerCpu = availableParallelism() > 1 ? "1" : "0";
      expect((await run("taskset", ["-a", "-p", "-c", "0", `${layer.pid}`])).code).toBe(0);
      const r = await run("taskset", [
        "-c",
        writerCpu,
        PYTHON,
        "-c",
        `import os, sys\nfor i in range(300): open(os.path.join(sys.argv[1], f"p{i}"), "w").write("x")`,
        t.mnt,
      ]);
      expect(r.code).toBe(0);
      expect((await layer.stop()).code).toBe(0);
      const m = /polling so far (\{[^}]*\})/.exec(layer.stderr() + layer.stdout());
      expect(m, layer.stderr()).not.toBeNull();
      return JSON.parse(m![1]!) as { polls: number; caught: number };
    };
    const on = await polling([]);
    expect(on.caught).toBeGreaterThan(0);
    expect(await polling(["--poll-us", "0"])).toMatchObject({ polls: 0, caught: 0 });

    const bad = await python(
      `import subprocess, sys\nr = subprocess.run([sys.argv[1], sys.argv[2], "mount", sys.argv[3], sys.argv[4], "--poll-us", "soon"], capture_output=True, text=True)\nprint(r.returncode, r.stderr)`,
      [process.execPath, CLI, t.lower.dir, t.mnt],
    );
    expect(bad.stdout).toMatch(/^64 .*--poll-us wants microseconds/);
  });

  it("waits in `umount` until the daemon is gone", async () => {
    await t.mount();
    const r = await python(
      `import os, sys; open(os.path.join(sys.argv[1], "busy"), "w").write("x" * 100000)`,
      [t.mnt],
    );
    expect(r.code).toBe(0);
    const s = await t.unmount("cli");
    expect(s.umount?.code, s.umount?.stderr).toBe(0);
    expect(s.runningAfterUmount, "daemon still running when umount returned").toBe(false);
    expect(s.code).toBe(0);
  });

  it("ends the daemon in `umount` although another mount namespace still holds a copy of the mount", async () => {
    // A container or `unshare -m` started while the home is mounted copies the mount; our
    // umount does not reach that copy, so the kernel never tells the daemon (it waited 60 s).
    await t.mount();
    await writeFile(t.p("kept"), "x");
    const holder = spawn("unshare", ["-m", "--propagation", "private", "sleep", "60"], { stdio: "ignore" });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const t0 = Date.now();
      const s = await t.unmount("cli");
      expect(s.umount?.code, s.umount?.stderr).toBe(0);
      expect(s.runningAfterUmount, "daemon still running when umount returned").toBe(false);
      expect(s.forced).toBe(false);
      expect(Date.now() - t0).toBeLessThan(20_000);
      expect(await readFile(t.low("kept"), "utf8")).toBe("x");
    } finally {
      holder.kill("SIGKILL");
    }
  });
});
