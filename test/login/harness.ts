/**
 * A small lab for the login tests: real users, a PAM service of our own driven by pamtester and
 * by a private sshd, exFAT sticks on loop devices, and the checks every logout must pass.
 * Everything made here is removed in `cleanup()` (and, as a last resort, when the process exits).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { makeExfatStick } from "../../lab/sticks/index.js";
import { track } from "../support/cleanup.js";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const HOOK_SHIM = path.join(ROOT, "bin/pershome-pam-hook");
export const COMPILED_HOOK = path.join(ROOT, "dist/src/login/hook.js");
export const PROFILE = path.join(ROOT, "data/pam-configs/pershome");

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function sh(cmd: string, args: string[], opts: { cwd?: string; timeout?: number } = {}) {
  const r = await execa(cmd, args, {
    reject: false,
    stdin: "ignore",
    timeout: opts.timeout ?? 60_000,
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout ?? ""), stderr: String(r.stderr ?? "") };
}

export async function must(cmd: string, args: string[]): Promise<string> {
  const r = await sh(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** Polls until `fn` returns a truthy value, or throws with `what` after `ms`. */
export async function waitFor<T>(
  what: string,
  fn: () => T | Promise<T>,
  ms = 15_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  let last: T | undefined;
  for (;;) {
    last = await fn();
    if (last) return last as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export interface Stick {
  image: string;
  loop: string;
  label: string;
}

function mountinfo(): { mountpoint: string; fstype: string; source: string }[] {
  return fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const [a, b] = l.split(" - ");
      const f = a!.split(" ");
      const g = b!.split(" ");
      const un = (s: string): string =>
        s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
      return { mountpoint: un(f[4]!), fstype: g[0]!, source: un(g[1]!) };
    });
}

export function mountAt(p: string): { fstype: string; source: string } | undefined {
  return mountinfo()
    .filter((m) => m.mountpoint === p)
    .pop();
}

export function mountsUnder(p: string): string[] {
  return mountinfo()
    .filter((m) => m.mountpoint === p || m.mountpoint.startsWith(p + "/"))
    .map((m) => m.mountpoint);
}

/** Processes whose command line contains every one of `parts`. */
export function processesWith(...parts: string[]): { pid: number; cmd: string }[] {
  const out: { pid: number; cmd: string }[] = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    let cmd = "";
    try {
      cmd = fs.readFileSync(`/proc/${d}/cmdline`, "utf8").replace(/\0/g, " ").trim();
      if (/^\S+\s+Z/.test(fs.readFileSync(`/proc/${d}/stat`, "utf8").replace(/^.*\) /, "x "))) continue; // zombie
    } catch {
      continue;
    }
    if (cmd && parts.every((p) => cmd.includes(p))) out.push({ pid: Number(d), cmd });
  }
  return out;
}

export class LoginLab {
  readonly id = randomBytes(3).toString("hex");
  readonly dir: string;
  readonly service: string;
  readonly configFile: string;
  readonly logFile: string;
  readonly listFile: string;
  readonly messageDir: string;
  readonly stateDir: string;
  readonly users: TestUser[] = [];
  readonly sticks: Stick[] = [];
  private readonly spawned: ChildProcess[] = [];
  private readonly pids: number[] = [];
  private config: Record<string, string> = {};
  private untrack: () => void;
  sshd: Sshd | null = null;

  constructor() {
    if (!fs.existsSync(COMPILED_HOOK))
      throw new Error(
        `${COMPILED_HOOK} is missing: build first (npm run build, or npx tsc -p tsconfig.json)`,
      );
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "pershome-login-"));
    fs.chmodSync(this.dir, 0o755);
    this.service = `pershome-test-${this.id}`;
    this.configFile = path.join(this.dir, "pershome.conf");
    this.logFile = path.join(this.dir, "pershome.log");
    this.listFile = path.join(this.dir, "persistent_homes");
    this.messageDir = path.join(this.dir, "messages");
    this.stateDir = `/run/pershome-test-${this.id}`;
    fs.writeFileSync(this.logFile, "");
    fs.writeFileSync(this.listFile, "");
    this.setConfig({});
    fs.writeFileSync(`/etc/pam.d/${this.service}`, this.pamServiceText());
    this.untrack = track({ what: `login lab ${this.id}`, undo: () => this.cleanupSync() });
  }

  /** The session line of the shipped pam-auth-update profile, pointed at this checkout and our config. */
  sessionLine(): string {
    const text = fs.readFileSync(PROFILE, "utf8");
    const block = text.split(/^Session:\s*$/m)[1] ?? "";
    const line = block.split("\n").find((l) => /^\s+\S/.test(l));
    if (!line) throw new Error(`no Session: line in ${PROFILE}`);
    return (
      line.trim().replace("/usr/lib/pershome/bin/pershome-pam-hook", HOOK_SHIM) +
      ` --config ${this.configFile}`
    );
  }

  private pamServiceText(): string {
    return [
      `# pershome login tests (lab ${this.id}); removed when the tests end`,
      "auth     required  pam_permit.so",
      "account  required  pam_permit.so",
      `session  ${this.sessionLine().replace(/^(\S+)\s+/, "$1  ")}`,
      "",
    ].join("\n");
  }

  /** Rewrites the config: the lab's own paths plus `extra` (key = value). */
  setConfig(extra: Record<string, string>): void {
    this.config = {
      list_file: this.listFile,
      log_file: this.logFile,
      syslog: "no",
      state_dir: this.stateDir,
      message_dir: this.messageDir,
      systemd: "no",
      watch_interval: "0.5",
      logout_wait: "5",
      ...extra,
    };
    fs.writeFileSync(
      this.configFile,
      Object.entries(this.config)
        .map(([k, v]) => `${k} = ${v}`)
        .join("\n") + "\n",
    );
  }

  writeList(text: string): void {
    fs.writeFileSync(this.listFile, text);
  }

  log(): string {
    return fs.readFileSync(this.logFile, "utf8");
  }

  /** A reader of what is logged from now on (tests share one log file). */
  logFromHere(): () => string {
    const from = this.log().length;
    return () => this.log().slice(from);
  }

  message(user: TestUser): string | null {
    try {
      return fs.readFileSync(path.join(this.messageDir, user.name), "utf8");
    } catch {
      return null;
    }
  }

  async addUser(): Promise<TestUser> {
    const name = `phl${this.id}${this.users.length}`;
    await must("useradd", ["-m", "-s", "/bin/bash", "-K", "UID_MIN=20000", "-K", "UID_MAX=29999", name]);
    const [, , uid, gid, , home] = (await must("getent", ["passwd", name])).trim().split(":");
    const u = { name, uid: Number(uid), gid: Number(gid), home: home! };
    this.users.push(u);
    return u;
  }

  /** An exFAT stick image on a loop device; with `pershome` it has the folder (and `files` in it). */
  async addStick(
    opts: { label?: string; pershome?: boolean; files?: Record<string, string> } = {},
  ): Promise<Stick> {
    const label = opts.label ?? `PH${this.sticks.length}`;
    const image = path.join(this.dir, `stick${this.sticks.length}.img`);
    await makeExfatStick(image, 48, label);
    const loop = (await must("losetup", ["-f", "--show", image])).trim();
    const stick = { image, loop, label };
    this.sticks.push(stick);
    if (opts.pershome ?? true) {
      await this.onStick(stick, (root) => {
        fs.mkdirSync(path.join(root, "pershome"));
        for (const [n, t] of Object.entries(opts.files ?? {}))
          fs.writeFileSync(path.join(root, "pershome", n), t);
      });
    }
    return stick;
  }

  /** Mounts the stick on the host for a moment (nobody else may have it mounted). */
  async onStick<T>(stick: Stick, fn: (root: string) => T): Promise<T> {
    const mp = fs.mkdtempSync(path.join(this.dir, "look-"));
    await must("mount.exfat-fuse", ["-o", "nosuid,nodev", stick.loop, mp]);
    try {
      return fn(mp);
    } finally {
      await must("umount", [mp]);
      fs.rmdirSync(mp);
    }
  }

  /** Runs a PAM session operation through pamtester, as a login program would. */
  async pam(
    user: TestUser,
    op: "open_session" | "close_session",
  ): Promise<{ code: number; output: string; ms: number }> {
    const t0 = Date.now();
    const r = await sh("pamtester", ["-v", this.service, user.name, op], { timeout: 120_000 });
    return { code: r.code, output: r.stdout + r.stderr, ms: Date.now() - t0 };
  }

  async open(user: TestUser): Promise<{ output: string; ms: number }> {
    const r = await this.pam(user, "open_session");
    if (r.code !== 0) throw new Error(`pamtester open_session failed: ${r.output}`);
    return r;
  }

  async close(user: TestUser): Promise<{ output: string; ms: number }> {
    const r = await this.pam(user, "close_session");
    if (r.code !== 0) throw new Error(`pamtester close_session failed: ${r.output}`);
    return r;
  }

  /** Runs a shell command as the user (no PAM), from `cwd`. */
  async asUser(
    user: TestUser,
    script: string,
    cwd = "/",
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    return sh(
      "setpriv",
      [`--reuid=${user.uid}`, `--regid=${user.gid}`, "--clear-groups", "--", "sh", "-c", script],
      { cwd, timeout: 30_000 },
    );
  }

  /** Starts a program as the user, in the background, with its cwd in `cwd`; killed at cleanup. */
  startAsUser(user: TestUser, args: string[], cwd: string): number {
    const c = spawn(
      "setpriv",
      [`--reuid=${user.uid}`, `--regid=${user.gid}`, "--clear-groups", "--", ...args],
      {
        cwd,
        detached: true,
        stdio: "ignore",
      },
    );
    c.unref();
    this.spawned.push(c);
    this.pids.push(c.pid!);
    return c.pid!;
  }

  stickHome(user: TestUser): string {
    return `${this.stateDir}/${user.name}/stick/pershome`;
  }

  /** What the user's home is now: the stick ("stick") or the normal home ("normal"). */
  homeIs(user: TestUser): "stick" | "normal" | string {
    const m = mountAt(user.home);
    if (!m) return "normal";
    if (m.fstype === "fuse.pershome" && m.source === this.stickHome(user)) return "stick";
    return `${m.fstype} ${m.source}`;
  }

  /** Everything a finished logout must leave: no layer, no stick mount, no daemon or helper, no lock. */
  leftovers(user: TestUser, stick?: Stick): string[] {
    const bad: string[] = [];
    const m = mountAt(user.home);
    if (m?.fstype === "fuse.pershome") bad.push(`layer still mounted on ${user.home}`);
    for (const mp of mountsUnder(`${this.stateDir}/${user.name}`)) bad.push(`mount left at ${mp}`);
    for (const p of processesWith("dist/src/cli/main.js", "mount", user.home + " "))
      bad.push(`layer daemon ${p.pid} still running`);
    for (const p of processesWith("dist/src/login/hook.js", ` ${user.name} `))
      bad.push(`helper ${p.pid} still running: ${p.cmd}`);
    // No fusermount3 helper may outlive a session (there is one if a mount uses auto_unmount).
    for (const p of processesWith("fusermount", user.home))
      bad.push(`fusermount helper ${p.pid} still running`);
    if (stick)
      for (const p of processesWith("mount.exfat-fuse", stick.loop + " "))
        bad.push(`stick driver ${p.pid} still running`);
    if (fs.existsSync(`${this.stateDir}/${user.name}`)) {
      bad.push(
        `state left: ${this.stateDir}/${user.name}: ${fs.readdirSync(`${this.stateDir}/${user.name}`).join(", ")}`,
      );
    }
    return bad;
  }

  async expectClean(user: TestUser, stick?: Stick, ms = 15_000): Promise<void> {
    await waitFor(
      `a clean logout of ${user.name} (left: ${this.leftovers(user, stick).join("; ")})`,
      () => this.leftovers(user, stick).length === 0,
      ms,
    );
  }

  /** The pid of the exfat-fuse driver serving a stick. */
  stickDriver(stick: Stick): number | null {
    return processesWith("mount.exfat-fuse", stick.loop + " ")[0]?.pid ?? null;
  }

  async startSshd(): Promise<Sshd> {
    this.sshd = await Sshd.start(this);
    return this.sshd;
  }

  private killStarted(): void {
    for (const pid of this.pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    for (const u of this.users) {
      // Whatever still runs as a test user was started by this lab (these users exist only here).
      for (const d of fs.readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
        try {
          if (fs.statSync(`/proc/${d}`).uid === u.uid) process.kill(Number(d), "SIGKILL");
        } catch {
          /* gone */
        }
      }
    }
  }

  private resetUsersSync(): void {
    for (const u of this.users) {
      spawnSync(process.execPath, [COMPILED_HOOK, "--reset", u.name, "--config", this.configFile], {
        stdio: "ignore",
        timeout: 60_000,
      });
      for (const p of processesWith("dist/src/login/hook.js", ` ${u.name} `)) {
        try {
          process.kill(p.pid, "SIGKILL");
        } catch {
          /* gone */
        }
      }
      if (mountAt(u.home)) spawnSync("umount", ["-l", u.home], { stdio: "ignore" });
      for (const mp of mountsUnder(`${this.stateDir}/${u.name}`).reverse())
        spawnSync("umount", ["-l", mp], { stdio: "ignore" });
    }
  }

  private cleanupSync(): void {
    this.sshd?.stopSync();
    this.killStarted();
    this.resetUsersSync();
    for (const s of this.sticks) {
      for (const p of processesWith("mount.exfat-fuse", s.loop + " "))
        spawnSync("kill", ["-KILL", String(p.pid)]);
      spawnSync("losetup", ["-d", s.loop], { stdio: "ignore" });
    }
    for (const u of this.users) {
      // Never "userdel -r" over a mounted home: it would empty the stick.
      const mounted = !!mountAt(u.home);
      spawnSync("userdel", mounted ? ["-f", u.name] : ["-f", "-r", u.name], { stdio: "ignore" });
    }
    fs.rmSync(`/etc/pam.d/${this.service}`, { force: true });
    spawnSync("rm", ["-rf", "--one-file-system", this.stateDir], { stdio: "ignore" });
    spawnSync("rm", ["-rf", "--one-file-system", this.dir], { stdio: "ignore" });
  }

  async cleanup(): Promise<void> {
    this.cleanupSync();
    this.untrack();
  }
}

/** A private sshd on 127.0.0.1 whose PAM service is the lab's (sshd names it after its binary). */
export class Sshd {
  private constructor(
    private readonly lab: LoginLab,
    readonly port: number,
    private readonly proc: ChildProcess,
    private readonly key: string,
    readonly stderr: () => string,
  ) {}

  static async start(lab: LoginLab): Promise<Sshd> {
    const d = path.join(lab.dir, "sshd");
    fs.mkdirSync(path.join(d, "keys"), { recursive: true });
    fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
    await must("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(d, "host_key")]);
    await must("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(d, "client_key")]);
    const pub = fs.readFileSync(path.join(d, "client_key.pub"), "utf8");
    for (const u of lab.users) fs.writeFileSync(path.join(d, "keys", u.name), pub);
    const port = await freePort();
    fs.writeFileSync(
      path.join(d, "sshd_config"),
      [
        "ListenAddress 127.0.0.1",
        `Port ${port}`,
        `HostKey ${d}/host_key`,
        "UsePAM yes",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin no",
        `AuthorizedKeysFile ${d}/keys/%u`,
        "StrictModes no",
        `AllowUsers ${lab.users.map((u) => u.name).join(" ") || "nobody"}`,
        "PrintMotd no",
        "PrintLastLog no",
        "PidFile none",
        "LogLevel VERBOSE",
        "",
      ].join("\n"),
    );
    // sshd's PAM service is its program name: a link named like the lab's service selects it.
    const bin = path.join(d, lab.service);
    fs.symlinkSync("/usr/sbin/sshd", bin);
    let err = "";
    const proc = spawn(bin, ["-D", "-e", "-f", path.join(d, "sshd_config")], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    proc.stderr?.on("data", (b: Buffer) => (err += b.toString()));
    await waitFor(`sshd listening on ${port} (${err})`, () => canConnect(port), 10_000);
    return new Sshd(lab, port, proc, path.join(d, "client_key"), () => err);
  }

  /**
   * Logs in by key and runs `command`; with `command` null it is an interactive login on a
   * terminal (the only kind sshd shows PAM messages to) that reads `input` as typed lines.
   */
  async run(
    user: TestUser,
    command: string | null,
    input = "",
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    const args = [
      ...(command === null ? ["-tt"] : ["-T"]),
      "-i",
      this.key,
      "-p",
      String(this.port),
      "-o",
      "BatchMode=yes",
      "-o",
      "StrictHostKeyChecking=no",
      "-o",
      "UserKnownHostsFile=/dev/null",
      "-o",
      "LogLevel=ERROR",
      `${user.name}@127.0.0.1`,
      ...(command === null ? [] : [command]),
    ];
    const r = await execa("ssh", args, { reject: false, input, timeout: 60_000 });
    return { code: r.exitCode ?? -1, stdout: String(r.stdout ?? ""), stderr: String(r.stderr ?? "") };
  }

  stopSync(): void {
    try {
      this.proc.kill("SIGTERM");
    } catch {
      /* gone */
    }
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(port, "127.0.0.1");
    c.once("connect", () => {
      c.destroy();
      resolve(true);
    });
    c.once("error", () => resolve(false));
  });
}
