// Fast checks of the micro-VM runner's host-side pieces (no VM is booted here).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { withParentDirs, writeCpio } from "../../lab/microvm/cpio.js";
import { findGuestKernel, compareKernelVersions } from "../../lab/microvm/kernel.js";
import { GUEST_MODULES, resolveModules } from "../../lab/microvm/modules.js";
import { OutputParser, type Marker } from "../../lab/microvm/protocol.js";
import { renderJob } from "../../lab/microvm/job.js";
import { shQuote } from "../../lab/microvm/shell.js";
import { buildQemuArgs, qemuOpt } from "../../lab/microvm/qemu-args.js";
import { stripModuleSignature } from "../../lab/microvm/initramfs.js";

const dir = mkdtempSync(join(tmpdir(), "microvm-units-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("cpio writer", () => {
  it("produces an archive GNU cpio lists and extracts identically", () => {
    const data = Buffer.from("hello\nwörld\n");
    const img = writeCpio(
      withParentDirs([
        { kind: "file", path: "a/b/c.txt", data, mode: 0o640 },
        { kind: "symlink", path: "a/link", target: "b/c.txt" },
        { kind: "file", path: "init", data: Buffer.from("#!/bin/sh\n"), mode: 0o755 },
      ]),
    );
    expect(img.length % 512).toBe(0);
    const archive = join(dir, "t.cpio");
    writeFileSync(archive, img);
    const list = execFileSync("cpio", ["-t", "--quiet", "-F", archive], { encoding: "utf8" })
      .trim()
      .split("\n");
    expect(list).toEqual(["a", "a/b", "a/b/c.txt", "a/link", "init"]);
    const out = join(dir, "x");
    execFileSync("sh", ["-c", `mkdir -p ${out} && cd ${out} && cpio -id --quiet -F ${archive}`]);
    expect(readFileSync(join(out, "a/b/c.txt"))).toEqual(data);
    expect(execFileSync("readlink", [join(out, "a/link")], { encoding: "utf8" }).trim()).toBe("b/c.txt");
  });

  it("rejects duplicate and escaping paths", () => {
    expect(() =>
      writeCpio([
        { kind: "dir", path: "x" },
        { kind: "dir", path: "x" },
      ]),
    ).toThrow(/duplicate/);
    expect(() => writeCpio([{ kind: "dir", path: "../x" }])).toThrow(/bad path/);
  });
});

describe("guest kernel and modules", () => {
  const kernel = findGuestKernel();

  it("finds an installed Debian kernel with its modules", () => {
    expect(kernel.version).toMatch(/^\d+\.\d+/);
    expect(readFileSync(kernel.image).length).toBeGreaterThan(1_000_000);
    expect(compareKernelVersions("6.1.0-56-amd64", "6.1.0-9-amd64")).toBeGreaterThan(0);
  });

  it("orders every module after its dependencies and includes all wanted ones", () => {
    const mods = resolveModules(kernel.modulesDir);
    const names = mods.map((m) => m.name);
    for (const w of GUEST_MODULES) expect(names).toContain(w.replace(/-/g, "_"));
    const dep = readFileSync(join(kernel.modulesDir, "modules.dep"), "utf8");
    for (const m of mods) {
      const line = dep.split("\n").find((l) => l.startsWith(m.relPath + ":"));
      expect(line, m.relPath).toBeDefined();
      for (const d of (line ?? "").split(":")[1]?.trim().split(/\s+/).filter(Boolean) ?? []) {
        const di = mods.findIndex((x) => x.relPath === d);
        expect(di, `${d} (needed by ${m.relPath})`).toBeGreaterThanOrEqual(0);
        expect(di).toBeLessThan(mods.indexOf(m));
      }
    }
    expect(mods.find((m) => m.name === "usb_storage")?.params).toBe("delay_use=0");
  });

  it("strips appended module signatures", () => {
    const ko = Buffer.concat([
      Buffer.from("ELFDATA"),
      Buffer.from("SIGNATURE"),
      Buffer.from([0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 9]),
      Buffer.from("~Module signature appended~\n"),
    ]);
    expect(stripModuleSignature(ko).toString()).toBe("ELFDATA");
    expect(stripModuleSignature(Buffer.from("plain"))).toEqual(Buffer.from("plain"));
  });
});

describe("output protocol", () => {
  const run = (chunks: Buffer[]): { out: string; markers: Marker[] } => {
    const out: Buffer[] = [];
    const markers: Marker[] = [];
    const p = new OutputParser(
      "n0nce",
      (b) => out.push(Buffer.from(b)),
      (m) => markers.push(m),
    );
    for (const c of chunks) p.push(c);
    p.flush();
    return { out: Buffer.concat(out).toString(), markers };
  };

  it("separates markers from output even when split byte by byte", () => {
    const stream = Buffer.from(
      "boot\n\x01pershome-start:n0nce:3.25\nhé\x01llo\n\x01pershome-exit:bad:1\n\x01pershome-exit:n0nce:3\n",
    );
    const whole = run([stream]);
    const bytes = run([...stream].map((b) => Buffer.from([b])));
    for (const r of [whole, bytes]) {
      expect(r.out).toBe("boot\nhé\x01llo\n\x01pershome-exit:bad:1\n");
      expect(r.markers).toEqual([
        { kind: "start", guestUptimeS: 3.25 },
        { kind: "exit", code: 3 },
      ]);
    }
  });
});

describe("job rendering", () => {
  it("quotes anything for sh", () => {
    const nasty = `it's "quoted" $HOME \`x\` \\ ; rm -rf / ; ünï`;
    expect(execFileSync("sh", ["-c", `printf %s ${shQuote(nasty)}`], { encoding: "utf8" })).toBe(nasty);
  });

  it("renders a config and a job script sh accepts", () => {
    const job = renderJob({
      command: 'echo "$GREETING" from $(pwd); exit 7',
      env: { PATH: "/usr/bin:/bin", GREETING: "it's me" },
      cwd: dir,
      shares: [{ tag: "share0", guestPath: "/srv/x y", readOnly: true }],
      sticks: 2,
      msize: 512000,
      stickWaitMs: 1000,
      hostname: "microvm",
      nonce: "abc",
    });
    expect(job.config).toContain("STICKS=2");
    expect(job.config).toContain("SHARE_0_PATH='/srv/x y'");
    expect(job.config).toContain("SHARE_0_OPTS='ro,cache=mmap'");
    // Run the job script on the host: same semantics as in the guest.
    const script = join(dir, "job.sh");
    writeFileSync(script, job.jobScript);
    let status = 0;
    let out = "";
    try {
      out = execFileSync("sh", [script], { encoding: "utf8" });
    } catch (e) {
      const err = e as { status: number; stdout: string };
      status = err.status;
      out = err.stdout;
    }
    expect(status).toBe(7);
    expect(out).toBe(`it's me from ${dir}\n`);
    expect(() =>
      renderJob({
        ...{
          command: "x",
          env: { "BAD-NAME": "1" },
          cwd: "/",
          shares: [],
          sticks: 0,
          msize: 1,
          stickWaitMs: 1,
          hostname: "h",
        },
      }),
    ).toThrow(/bad environment/);
  });
});

describe("qemu arguments", () => {
  it("plugs sticks on xhci with serials in order and escapes commas", () => {
    const args = buildQemuArgs({
      qemu: "qemu-system-x86_64",
      kernel: "/k",
      initrd: "/i",
      append: "console=ttyS0",
      memoryMb: 2048,
      cpus: 2,
      consoleLog: "/t/c.log",
      outputSocket: "/t/o.sock",
      jobDir: "/t/job",
      rootDir: "/",
      shares: [{ tag: "share0", hostPath: "/a,b", readOnly: false }],
      sticks: [
        { image: "/s0.img", cache: "writeback" },
        { image: "/s1.img", cache: "none" },
      ],
    });
    const s = args.join(" ");
    expect(s).toContain("-accel tcg -cpu max -smp 2 -m 2048");
    expect(s).toContain("local,id=fsroot,path=/,security_model=none,readonly=on,multidevs=remap");
    expect(s).toContain("path=/a,,b,security_model=passthrough");
    expect(s).toContain("if=none,id=stick0,file=/s0.img,format=raw,cache=writeback");
    expect(s).toContain("usb-storage,bus=xhci.0,drive=stick1,removable=on,serial=pershome-stick1");
    expect(s.indexOf("drive=stick0")).toBeLessThan(s.indexOf("drive=stick1"));
    expect(qemuOpt("a,b,,c")).toBe("a,,b,,,,c");
  });
});
