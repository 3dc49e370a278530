import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { startQemu, type QemuProcess } from "../microvm/vm.js";
import { AgentChannel, type AgentResult } from "./agent.js";
import { CommandFailed, LabError } from "./errors.js";
import type { LabNetwork } from "./network.js";
import { QmpClient } from "./qmp.js";
import { tail } from "./server.js";

// A thin client: QEMU (TCG) netbooting from the LTSP server through its iPXE option ROM, with a
// USB controller for sticks, the kernel console in a file, the lab agent on the second serial
// port and QMP for plugging sticks and snapshots. The API follows the NixOS test driver:
// execute / succeed / fail / waitUntilSucceeds / waitForFile.

export interface MachineOptions {
  name: string;
  /** Last byte of the MAC address (52:54:00:77:00:NN); also makes the DHCP lease stable. */
  index: number;
  network: LabNetwork;
  /** Sockets live here (short paths). */
  dir: string;
  /** Console logs go here (kept as artifacts). */
  logDir: string;
  memoryMb?: number;
  log: (line: string) => void;
}

const DEFAULT_TIMEOUT = 120_000;

export class Machine {
  readonly name: string;
  private qemu: QemuProcess | undefined;
  private qmpClient: QmpClient | undefined;
  private agent: AgentChannel | undefined;
  private readonly tap: Promise<string>;
  private consoleFile: string;
  private bootCount = 0;

  constructor(private readonly opts: MachineOptions) {
    this.name = opts.name;
    this.tap = opts.network.addTap(opts.name);
    this.consoleFile = join(opts.logDir, `${opts.name}.console.log`);
  }

  get mac(): string {
    return `52:54:00:77:00:${this.opts.index.toString(16).padStart(2, "0")}`;
  }

  get consoleLog(): string {
    return this.consoleFile;
  }

  /** Boots from the network and waits for the agent. */
  async boot(timeoutMs = 300_000): Promise<void> {
    const t0 = Date.now();
    await this.start([]);
    await this.agent!.waitReady(timeoutMs);
    // Lab machines are called by their role (the server's DHCP gave a generic name).
    await this.succeed(`hostname ${this.name} && echo ${this.name} > /etc/hostname`);
    this.opts.log(`${this.name}: booted in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }

  /** Power-cycles the machine: a fresh netboot. */
  async reboot(timeoutMs?: number): Promise<void> {
    await this.stopQemu();
    await this.boot(timeoutMs);
  }

  /** Saves the running machine (RAM and devices) to `file`; the machine keeps running. */
  async snapshot(file: string): Promise<void> {
    const qmp = this.requireQmp();
    rmSync(file, { force: true });
    await qmp.execute("stop");
    await qmp.execute("migrate", { uri: `exec:zstd -1 -T0 -q -f -o ${shellQuote(file)}` });
    for (;;) {
      const s = await qmp.execute<{ status?: string; "error-desc"?: string }>("query-migrate");
      if (s.status === "completed") break;
      if (s.status === "failed" || s.status === "cancelled")
        throw new LabError(`${this.name}: snapshot failed: ${s["error-desc"] ?? s.status}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await qmp.execute("cont");
  }

  /** Replaces the running machine by the state saved in `file` (a fresh QEMU process). */
  async restore(file: string): Promise<void> {
    const t0 = Date.now();
    await this.stopQemu();
    await this.start(["-incoming", `exec:zstd -d -c ${shellQuote(file)}`]);
    const qmp = this.requireQmp();
    for (;;) {
      const s = await qmp.execute<{ status: string }>("query-status");
      if (s.status !== "inmigrate") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await qmp.execute("cont");
    await this.agent!.waitReady(60_000);
    // The guest clock stood still while the snapshot lay on disk.
    await this.succeed(`date -u -s @${Math.floor(Date.now() / 1000)} >/dev/null`);
    this.opts.log(`${this.name}: restored in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }

  /** Runs `command` with sh -c as root; never throws for a non-zero exit. */
  async execute(command: string, timeoutMs = DEFAULT_TIMEOUT): Promise<AgentResult> {
    if (!this.agent) throw new LabError(`${this.name} is not running`);
    return this.agent.run(command, timeoutMs);
  }

  /** Runs `command`, returns its output; throws (with the output) unless it exits 0. */
  async succeed(command: string, timeoutMs?: number): Promise<string> {
    const r = await this.execute(command, timeoutMs);
    if (r.rc !== 0) throw new CommandFailed(this.name, command, r.rc, r.output);
    return r.output;
  }

  /** Runs `command`, returns its output; throws unless it exits non-zero. */
  async fail(command: string, timeoutMs?: number): Promise<string> {
    const r = await this.execute(command, timeoutMs);
    if (r.rc === 0) throw new CommandFailed(this.name, `${command} (expected to fail)`, r.rc, r.output);
    return r.output;
  }

  /** Retries `command` until it exits 0 (every `intervalMs`), at most `timeoutMs`. */
  async waitUntilSucceeds(command: string, timeoutMs = 60_000, intervalMs = 500): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let last: AgentResult = { rc: -1, output: "" };
    for (;;) {
      last = await this.execute(command, Math.max(5_000, deadline - Date.now()));
      if (last.rc === 0) return last.output;
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
    throw new CommandFailed(
      this.name,
      `${command} (still failing after ${timeoutMs / 1000} s)`,
      last.rc,
      last.output,
    );
  }

  async waitForFile(path: string, timeoutMs = 60_000): Promise<void> {
    await this.waitUntilSucceeds(`test -e ${shellQuote(path)}`, timeoutMs);
  }

  /**
   * Logs `user` in with `su -l` (the client's real PAM session stack opens and closes around it),
   * runs `script` in the login shell, logs out. The script comes on the shell's standard input,
   * not with -c: util-linux su hides PAM's messages to the user with -c, and those messages are
   * part of what is tested. It is read whole (one brace group) before it runs, with stdin
   * /dev/null, so a command that reads its input cannot eat the rest of the script.
   */
  async asUser(user: string, script: string, timeoutMs?: number): Promise<AgentResult> {
    const wrapped = Buffer.from(`{\n${script}\n} </dev/null 2>&1\n`).toString("base64");
    return this.execute(`echo ${wrapped} | base64 -d | su -l ${shellQuote(user)} 2>&1`, timeoutMs);
  }

  /**
   * Logs `user` in with a password, as at the login screen of an LTSP client: ssh to the client
   * itself, so the whole PAM stack runs — auth (pamltsp checks the password against the LTSP
   * server and mounts the server's home over SSHFS), then the session (pershome mounts the stick
   * over it) — and a terminal shows what PAM says. Runs `script` in that shell, logs out.
   * Output: PAM's messages and the login banner, then the script's output; rc: the script's.
   * Returns when the logout is over (sshd closes the PAM session after the client has gone).
   */
  async login(user: string, password: string, script: string, timeoutMs = 180_000): Promise<AgentResult> {
    const b64 = (s: string): string => Buffer.from(s).toString("base64");
    return this.execute(
      `bash -c "$(echo ${b64(LOGIN_DRIVER)} | base64 -d)" lab-login ${shellQuote(user)} ${b64(password)} ${b64(script)}`,
      timeoutMs,
    );
  }

  qmp(): QmpClient {
    return this.requireQmp();
  }

  consoleTail(lines = 80): string {
    return existsSync(this.consoleFile) ? tail(readFileSync(this.consoleFile, "utf8"), lines) : "";
  }

  /** Pulls the plug: QEMU is killed, nothing is flushed. */
  async crash(): Promise<void> {
    await this.stopQemu();
  }

  private async start(extra: string[]): Promise<void> {
    const tap = await this.tap;
    const n = ++this.bootCount;
    const qmpSock = join(this.opts.dir, `${this.name}.qmp`);
    const agentSock = join(this.opts.dir, `${this.name}.agent`);
    rmSync(qmpSock, { force: true });
    rmSync(agentSock, { force: true });
    if (n > 1) this.consoleFile = join(this.opts.logDir, `${this.name}.console.${n}.log`);
    const args = [
      "-nodefaults",
      "-no-user-config",
      "-machine",
      "pc",
      "-accel",
      "tcg",
      "-cpu",
      "max",
      "-m",
      String(this.opts.memoryMb ?? 1536),
      "-display",
      "none",
      "-boot",
      "n",
      "-netdev",
      `tap,id=n0,ifname=${tap},script=no,downscript=no`,
      "-device",
      `e1000,netdev=n0,mac=${this.mac}`,
      "-serial",
      `file:${this.consoleFile}`,
      "-serial",
      `unix:${agentSock},server=on,wait=off`,
      "-qmp",
      `unix:${qmpSock},server=on,wait=off`,
      "-device",
      "qemu-xhci,id=xhci",
      ...extra,
    ];
    const qemu = startQemu(args, undefined, this.opts.network.exec([]));
    this.qemu = qemu;
    // QEMU dying on its own (not stopped by us) is news: say why, and stop waiting for it.
    const died = qemu.exited.then((e) => {
      const why = `${this.name}: QEMU exited (${e.signal ?? e.code}) ${qemu.stderr().trim()}`;
      if (this.qemu === qemu) this.opts.log(why);
      throw new LabError(why);
    });
    died.catch(() => undefined);
    this.qmpClient = await Promise.race([QmpClient.connect(qmpSock), died]);
    this.agent = new AgentChannel(this.name, agentSock);
    await Promise.race([this.agent.connect(), died]);
  }

  /** Kills QEMU and waits until it is gone (its tap device is free again). */
  private async stopQemu(): Promise<void> {
    const qemu = this.qemu;
    this.qemu = undefined;
    this.agent?.close();
    this.qmpClient?.close();
    this.agent = undefined;
    this.qmpClient = undefined;
    if (qemu) {
      qemu.kill();
      await qemu.exited;
    }
  }

  private requireQmp(): QmpClient {
    if (!this.qmpClient) throw new LabError(`${this.name} is not running`);
    return this.qmpClient;
  }

  /** Kills QEMU now (synchronous, for teardown). */
  stop(): void {
    const qemu = this.qemu;
    this.qemu = undefined;
    this.agent?.close();
    this.qmpClient?.close();
    qemu?.kill();
  }
}

export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Drives one interactive ssh login on a pty (sshd shows PAM's session messages only to an
 * interactive login, not to `ssh host command`). Everything typed ahead would be echoed by the
 * pty, so the script is sent only after the shell has turned echo and prompts off and said so.
 */
const LOGIN_DRIVER = `
set -u
user=$1 pw=$(echo "$2" | base64 -d) script=$(echo "$3" | base64 -d)
coproc S { SSHPASS=$pw exec sshpass -e ssh -tt -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \\
  -o LogLevel=ERROR -o PubkeyAuthentication=no "$user@localhost" 2>&1; }
exec 3>&"\${S[1]}" 4<&"\${S[0]}"
pid=$S_PID
printf '%s\\n' 'stty -echo -onlcr; set +H; PS1= PS2= PROMPT_COMMAND=; echo @@READY""@@' >&3
ready=0
while IFS= read -r -t 150 line <&4; do
  printf '%s\\n' "\${line%$'\\r'}"
  case $line in *@@READY@@*) ready=1; break ;; esac
done
if [ $ready = 0 ]; then echo "lab-login: $user's shell never became ready"; kill $pid 2>/dev/null; exit 255; fi
# exec, not exit: a login shell's exit prints "logout"
printf '{\\n%s\\n} </dev/null 2>&1\\nexec sh -c "exit $?"\\n' "$script" >&3
cat <&4
wait $pid; rc=$?
# sshd closes the PAM session (pershome's logout: layer, then stick) after the client has gone;
# a student at a real screen sees the logout finish. Wait for it the same way.
for _ in $(seq 600); do pgrep -u root -f "^sshd: $user( |\\[|$)" >/dev/null || break; sleep 0.25; done
exit $rc
`;
