// The guest environment: the host's node, env, cwd, shares, exit codes, timeouts.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MicroVmError, runInVm, VmTimeoutError } from "../../lab/microvm/index.js";
import { liveChildren } from "../../lab/microvm/reaper.js";

const dir = mkdtempSync(join(tmpdir(), "microvm-guest-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("micro-VM guest", () => {
  it(
    "runs the host's node, passes env and cwd, mounts shares, and propagates the exit code",
    { timeout: 300_000 },
    async () => {
      const rw = join(dir, "rw");
      const ro = join(dir, "ro");
      mkdirSync(rw);
      mkdirSync(ro);
      writeFileSync(join(ro, "in.txt"), "from-host\n");
      let pid = -1;
      const r = await runInVm({
        command: [
          `node -e 'console.log("node " + process.version + " " + process.getuid())'`,
          `echo "env=$MY_VAR home=$HOME"`,
          "pwd",
          "cat /srv/ro/in.txt",
          "echo from-guest > /srv/rw/out.txt",
          "touch /srv/ro/nope 2>/dev/null || echo ro-refused",
          "test -c /dev/fuse && echo has-fuse",
          "test -w /usr && echo overlay-writable",
          "exit 3",
        ].join("\n"),
        env: { MY_VAR: "it's x" },
        cwd: "/usr/share",
        shares: [
          { hostPath: rw, guestPath: "/srv/rw" },
          { hostPath: ro, guestPath: "/srv/ro", readOnly: true },
        ],
        timeoutMs: 240_000,
        onQemuStart: (p) => (pid = p),
      });
      expect(r.exitCode, r.output).toBe(3);
      expect(r.output).toContain(`node ${process.version} 0\n`);
      expect(r.output).toContain("env=it's x home=/root\n");
      expect(r.output).toContain("/usr/share\n");
      expect(r.output).toContain("from-host\n");
      expect(r.output).toContain("ro-refused\n");
      expect(r.output).toContain("has-fuse\n");
      expect(r.output).toContain("overlay-writable\n");
      expect(readFileSync(join(rw, "out.txt"), "utf8")).toBe("from-guest\n");
      expect(pid).toBeGreaterThan(0);
      expect(alive(pid)).toBe(false);
    },
  );

  it("kills QEMU on timeout and leaves no process behind", { timeout: 120_000 }, async () => {
    let pid = -1;
    const p = runInVm({
      command: "echo sleeping; sleep 600",
      timeoutMs: 10_000,
      onQemuStart: (x) => (pid = x),
    });
    await expect(p).rejects.toBeInstanceOf(VmTimeoutError);
    expect(pid).toBeGreaterThan(0);
    expect(alive(pid)).toBe(false);
    expect(liveChildren()).toBe(0);
  });

  it("reports a guest setup failure as a MicroVmError naming the cause", { timeout: 120_000 }, async () => {
    const share = join(dir, "share");
    mkdirSync(share, { recursive: true });
    const p = runInVm({
      command: "true",
      shares: [{ hostPath: share, guestPath: "/proc/nope" }],
      timeoutMs: 90_000,
    });
    await expect(p).rejects.toBeInstanceOf(MicroVmError);
    await expect(p).rejects.toThrow(/cannot mount share share0 at \/proc\/nope/);
  });
});
