// The Debian package, as admins get it: build it (ci/build-deb.sh), run lintian on it, install it
// with apt into a clean Debian 12 root (debootstrap --variant=minbase, cached by
// test/package/make-root.sh under .cache/debroot/, copied fresh for every run), check the
// command, the PAM profile, the unit and the conffile, then remove and purge it and check that
// /etc/pam.d/common-* are byte-identical to before the install — both when the profile was
// left alone (Default: no) and when the admin had enabled it.
//
// Node.js: the package depends on nodejs (>= 20.15); Debian 12 has 18.20, so the root gets a
// stand-in "nodejs" package made here from this machine's node binary, as an admin would install
// NodeSource's nodejs 20.x. Everything else (fuse3, libfuse3-3, exfat-fuse…) comes from Debian.
//
// Needs root, debootstrap, dpkg-deb, lintian, chroot and the Debian mirror (ci/apt-packages.txt).

import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const TOP = resolve(import.meta.dirname, "../..");
const WORK = join(TOP, ".cache", "package-test");
const ROOT = join(WORK, "root");
const isRoot = process.getuid?.() === 0;

type Opts = { env?: Record<string, string>; timeoutMs?: number };
type Result = { code: number; stdout: string; stderr: string; all: string };

/** Runs a command without blocking the event loop (vitest's worker must keep talking). */
function sh(cmd: string, args: string[], opts: Opts = {}): Promise<Result> {
  return new Promise((done) => {
    const child = spawn(cmd, args, {
      env: { ...process.env, ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 300_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      done({ code: code ?? -1, stdout, stderr, all: stdout + stderr });
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      done({ code: -1, stdout, stderr: String(e), all: stdout + String(e) });
    });
  });
}

async function must(cmd: string, args: string[], opts: Opts = {}): Promise<Result> {
  const r = await sh(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.code}):\n${r.all.slice(-4000)}`);
  return r;
}

const CHROOT_ENV = {
  DEBIAN_FRONTEND: "noninteractive",
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  LC_ALL: "C.UTF-8",
};

/** Runs a shell command inside the clean root. */
function inRoot(script: string, timeoutMs = 300_000): Promise<Result> {
  return sh("chroot", [ROOT, "/bin/sh", "-ec", script], { env: CHROOT_ENV, timeoutMs });
}
async function mustInRoot(script: string, timeoutMs = 300_000): Promise<Result> {
  const r = await inRoot(script, timeoutMs);
  if (r.code !== 0) throw new Error(`in root: ${script}\nfailed (${r.code}):\n${r.all.slice(-4000)}`);
  return r;
}

/** The bytes of the machine's PAM stack (and pam-auth-update's state) in the root. */
function pamState(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(join(ROOT, "etc/pam.d"))
    .filter((n) => n.startsWith("common-"))
    .sort()) {
    out[`/etc/pam.d/${f}`] = readFileSync(join(ROOT, "etc/pam.d", f)).toString("base64");
  }
  return out;
}

function mounted(dir: string): boolean {
  return readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .some((l) => l.split(" ")[1] === dir);
}

function teardownRoot(): void {
  for (const m of ["proc", "dev/pts"].map((d) => join(ROOT, d)).reverse()) {
    if (mounted(m)) spawnSync("umount", ["-l", m]);
  }
  // never rm -rf through a mount still in place
  if (!mounted(join(ROOT, "proc")) && !mounted(join(ROOT, "dev/pts")))
    rmSync(ROOT, { recursive: true, force: true });
}

let deb = "";
let debName = "";

describe.skipIf(!isRoot)("Debian package", () => {
  beforeAll(async () => {
    mkdirSync(WORK, { recursive: true });
    // 1. the package, built exactly as `npm run package` does (into the test's own directory)
    const out = join(WORK, "out");
    rmSync(out, { recursive: true, force: true });
    const built = await must("bash", [join(TOP, "ci/build-deb.sh")], {
      env: { OUT: out },
      timeoutMs: 900_000,
    });
    deb = built.stdout.trim().split("\n").pop()!;
    debName = deb.split("/").pop()!;
    expect(existsSync(deb)).toBe(true);

    // 2. a fresh copy of the cached clean Debian 12 root
    const cached = (
      await must("bash", [join(TOP, "test/package/make-root.sh")], { timeoutMs: 900_000 })
    ).stdout
      .trim()
      .split("\n")
      .pop()!;
    teardownRoot();
    await must("cp", ["-a", cached, ROOT]);
    copyFileSync("/etc/resolv.conf", join(ROOT, "etc/resolv.conf"));
    await must("mount", ["-t", "proc", "proc", join(ROOT, "proc")]);
    // no daemons start inside the chroot
    writeFileSync(join(ROOT, "usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 101\n");
    chmodSync(join(ROOT, "usr/sbin/policy-rc.d"), 0o755);
    copyFileSync(deb, join(ROOT, "tmp", debName));

    // 3. Node.js 20: a stand-in "nodejs" package from this machine's node (see the top comment)
    const nodeVersion = process.versions.node;
    const nd = join(WORK, "nodejs-standin");
    rmSync(nd, { recursive: true, force: true });
    mkdirSync(join(nd, "DEBIAN"), { recursive: true });
    mkdirSync(join(nd, "usr/bin"), { recursive: true });
    copyFileSync(process.execPath, join(nd, "usr/bin/node"));
    chmodSync(join(nd, "usr/bin/node"), 0o755);
    writeFileSync(
      join(nd, "DEBIAN/control"),
      [
        "Package: nodejs",
        `Version: ${nodeVersion}-0pershometest1`,
        "Architecture: amd64",
        "Maintainer: pershome tests <pershome@example.org>",
        "Depends: libc6, libstdc++6, libgcc-s1",
        "Provides: nodejs-abi",
        "Description: stand-in for NodeSource's nodejs 20.x (package test only)",
        "",
      ].join("\n"),
    );
    await must("dpkg-deb", ["--root-owner-group", "--build", nd, join(ROOT, "tmp/nodejs-standin.deb")]);

    await mustInRoot("apt-get update -q", 600_000);
    await mustInRoot("apt-get install -y -q /tmp/nodejs-standin.deb", 600_000);
  }, 1_800_000);

  afterAll(() => {
    if (existsSync(ROOT)) teardownRoot();
  });

  it("lintian finds no errors", async () => {
    const r = await sh("lintian", ["--fail-on", "error", deb], { timeoutMs: 600_000 });
    mkdirSync(join(TOP, "reports"), { recursive: true });
    writeFileSync(join(TOP, "reports/lintian.txt"), r.all);
    expect(r.all).not.toMatch(/^E: /m);
    expect(r.code, r.all).toBe(0);
  }, 600_000);

  it("the control data declares the real dependencies and the conffiles", async () => {
    const control = (await must("dpkg-deb", ["-f", deb])).stdout;
    expect(control).toMatch(/^Depends:.*nodejs \(>= 20\.15\)/m);
    for (const dep of [
      "fuse3",
      "libfuse3-3",
      "exfat-fuse | exfatprogs",
      "libpam-modules",
      "libpam-runtime",
    ]) {
      expect(control).toContain(dep);
    }
    expect(control).toMatch(/^Recommends:.*zenity/m);
    const conffiles = (await must("dpkg-deb", ["--info", deb, "conffiles"])).stdout;
    expect(conffiles).toContain("/etc/pershome/pershome.conf");
  });

  it("installs with apt, registers the PAM profile without changing the PAM stack, and purges clean", async () => {
    const before = pamState();
    const seenBefore = existsSync(join(ROOT, "var/lib/pam/seen"))
      ? readFileSync(join(ROOT, "var/lib/pam/seen"), "utf8")
      : "";
    expect(seenBefore).not.toContain("pershome");

    await mustInRoot(`apt-get install -y -q --no-install-recommends /tmp/${debName}`, 900_000);

    // the command
    expect((await mustInRoot("pershome --version")).stdout.trim()).toMatch(/^pershome \d+\.\d+\.\d+/);
    expect((await mustInRoot("pershome --help")).stdout).toContain("pershome init");
    // the libfuse3 addon loads against Debian's libfuse3-3
    expect(
      (
        await mustInRoot(
          `node --input-type=module -e "const m = await import('/usr/lib/pershome/dist/src/native/index.js'); console.log(typeof m.fuse)"`,
        )
      ).stdout.trim(),
    ).toBe("object");
    // files where docs/login.md says they go
    for (const f of [
      "usr/bin/pershome",
      "usr/lib/pershome/bin/pershome-pam-hook",
      "usr/lib/pershome/bin/pershome-notify",
      "usr/lib/pershome/dist/src/login/hook.js",
      "usr/lib/pershome/node_modules/execa/package.json",
      "usr/share/pam-configs/pershome",
      "lib/systemd/system/pershome@.service",
      "etc/pershome/pershome.conf",
      "etc/xdg/autostart/pershome-notify.desktop",
      "usr/share/applications/pershome-stick-helper.desktop",
      "usr/share/man/man1/pershome.1.gz",
      "usr/share/doc/pershome/copyright",
      "usr/share/doc/pershome/changelog.Debian.gz",
    ]) {
      expect(existsSync(join(ROOT, f)), f).toBe(true);
    }
    // no devDependencies shipped
    expect(existsSync(join(ROOT, "usr/lib/pershome/node_modules/vitest"))).toBe(false);
    expect(existsSync(join(ROOT, "usr/lib/pershome/node_modules/typescript"))).toBe(false);
    // every path the data files hard-code exists in the installed package
    for (const f of [
      "usr/share/pam-configs/pershome",
      "lib/systemd/system/pershome@.service",
      "etc/xdg/autostart/pershome-notify.desktop",
    ]) {
      for (const p of readFileSync(join(ROOT, f), "utf8").match(/\/usr\/lib\/pershome\/[^\s]+/g) ?? []) {
        expect(existsSync(join(ROOT, p)), `${p} (named in ${f})`).toBe(true);
      }
    }
    expect((await mustInRoot("dpkg-query -W -f '${Conffiles}' pershome")).stdout).toContain(
      "/etc/pershome/pershome.conf",
    );

    // pam-auth-update knows the profile (it lists it among the profiles it has seen) …
    expect(readFileSync(join(ROOT, "var/lib/pam/seen"), "utf8").split("\n")).toContain("pershome");
    // … but it is Default: no, so the PAM stack is exactly as before, even after another run
    await mustInRoot("pam-auth-update --package");
    expect(pamState()).toEqual(before);
    expect(readFileSync(join(ROOT, "etc/pam.d/common-session"), "utf8")).not.toContain("pershome");

    // remove: the conffile stays, the profile goes, the stack is as before
    await mustInRoot("mkdir -p /run/pershome/nobody /run/pershome-notify");
    await mustInRoot("apt-get remove -y -q pershome");
    expect(existsSync(join(ROOT, "usr/share/pam-configs/pershome"))).toBe(false);
    expect(existsSync(join(ROOT, "etc/pershome/pershome.conf"))).toBe(true);
    expect(pamState()).toEqual(before);

    // purge: what the package added is gone
    await mustInRoot("apt-get purge -y -q pershome");
    expect(existsSync(join(ROOT, "etc/pershome"))).toBe(false);
    expect(existsSync(join(ROOT, "run/pershome"))).toBe(false);
    expect(existsSync(join(ROOT, "run/pershome-notify"))).toBe(false);
    expect((await inRoot("dpkg-query -W -f '${Status}' pershome")).stdout).not.toContain("installed");
    expect(pamState()).toEqual(before);
    expect(readFileSync(join(ROOT, "var/lib/pam/seen"), "utf8")).toBe(seenBefore);
  }, 1_200_000);

  it("an admin who enabled the profile keeps it (and their settings) through an upgrade; removal takes it out", async () => {
    const before = pamState();
    await mustInRoot(`apt-get install -y -q --no-install-recommends /tmp/${debName}`, 900_000);
    await mustInRoot("pam-auth-update --enable pershome");
    const session = readFileSync(join(ROOT, "etc/pam.d/common-session"), "utf8");
    expect(session).toMatch(
      /^session\s+optional\s+pam_exec\.so seteuid stdout quiet \/usr\/lib\/pershome\/bin\/pershome-pam-hook$/m,
    );
    // reinstall keeps it enabled
    await mustInRoot(`apt-get install -y -q --reinstall /tmp/${debName}`, 900_000);
    expect(readFileSync(join(ROOT, "etc/pam.d/common-session"), "utf8")).toBe(session);
    // a real upgrade to a newer version: the admin's setting in the conffile and the enabled
    // profile are kept, nothing asks a question (apt runs without a terminal here)
    const conf = join(ROOT, "etc/pershome/pershome.conf");
    writeFileSync(conf, readFileSync(conf, "utf8") + "\nopt_in = everyone\n");
    const adminConf = readFileSync(conf, "utf8");
    const next = await newerVersionOf(deb);
    copyFileSync(next, join(ROOT, "tmp/pershome-next.deb"));
    await mustInRoot("apt-get install -y -q /tmp/pershome-next.deb", 900_000);
    expect((await mustInRoot("dpkg-query -W -f '${Version}' pershome")).stdout).toMatch(/\+lab1$/);
    expect(readFileSync(conf, "utf8")).toBe(adminConf);
    expect(readFileSync(join(ROOT, "etc/pam.d/common-session"), "utf8")).toBe(session);
    expect((await mustInRoot("/usr/bin/pershome --version")).stdout).toMatch(/^pershome /);
    await mustInRoot("apt-get purge -y -q pershome");
    expect(pamState()).toEqual(before);
  }, 1_200_000);
});

/** The same package under a higher version (as the next release would be), for the upgrade test. */
async function newerVersionOf(debFile: string): Promise<string> {
  const dir = join(WORK, "next");
  rmSync(dir, { recursive: true, force: true });
  await must("dpkg-deb", ["-R", debFile, dir]);
  const control = join(dir, "DEBIAN/control");
  writeFileSync(control, readFileSync(control, "utf8").replace(/^Version: (.*)$/m, "Version: $1+lab1"));
  const out = join(WORK, "pershome-next.deb");
  await must("dpkg-deb", ["--root-owner-group", "--build", dir, out]);
  return out;
}
