import { spawn } from "node:child_process";
import { createWriteStream, existsSync, readFileSync, readdirSync } from "node:fs";
import { execa } from "execa";
import { reapOnExit } from "../microvm/reaper.js";
import { CommandFailed, LabError } from "./errors.js";
import type { LabNetwork } from "./network.js";
import { atTeardown } from "./teardown.js";

// The LTSP server: a Debian root (images/) booted with systemd-nspawn inside the lab's network
// namespace. `--volatile=overlay` keeps the cached root pristine (every run starts from the
// same server). The host's PID 1 is not systemd, hence --register=no --keep-unit.

export interface ServerOptions {
  root: string;
  bootDir: string;
  network: LabNetwork;
  consoleLog: string;
  log: (line: string) => void;
}

export class LtspServer {
  readonly name = "server";
  private leader = -1;

  private constructor(
    private readonly child: ReturnType<typeof spawn>,
    private readonly opts: ServerOptions,
    private readonly undo: () => void,
  ) {}

  static async start(opts: ServerOptions): Promise<LtspServer> {
    const args = [
      "--pdeathsig",
      "KILL",
      "--",
      "systemd-nspawn",
      "--quiet",
      "--register=no",
      "--keep-unit",
      "--console=pipe",
      "--volatile=overlay",
      "-D",
      opts.root,
      // A name of its own per lab (nspawn keeps per-name state in /run), the same host name always.
      "-M",
      `ltsp-server-${process.pid}`,
      "--hostname=ltsp-server",
      `--network-namespace-path=${opts.network.path}`,
      "--capability=CAP_NET_ADMIN,CAP_NET_RAW",
      `--bind-ro=${opts.bootDir}:/srv/http/boot`,
      "-b",
    ];
    // The root is never written (--volatile=overlay), so two labs may boot it at once: no lock.
    const child = spawn("setpriv", args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, SYSTEMD_NSPAWN_LOCK: "0" },
    });
    reapOnExit(child);
    const out = createWriteStream(opts.consoleLog);
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    const undo = atTeardown("ltsp server", () => child.kill("SIGKILL"));
    const server = new LtspServer(child, opts, undo);
    const t0 = Date.now();
    server.leader = await server.findLeader(20_000);
    // Ready: dnsmasq (DHCP+TFTP) and the web server answer.
    await server.waitUntilSucceeds(
      "systemctl is-active --quiet dnsmasq && busybox wget -q -O /dev/null http://10.77.0.1/boot/boot.ipxe",
      60_000,
    );
    opts.log(`server: up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return server;
  }

  /** The container's PID 1 as the host sees it (the process whose innermost pid is 1). */
  private async findLeader(timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null) break;
      for (const pid of descendants(this.child.pid ?? -1)) {
        const nspid = /^NSpid:\s+(.*)$/m
          .exec(safeRead(`/proc/${pid}/status`))?.[1]
          ?.trim()
          .split(/\s+/);
        if (nspid && nspid.length > 1 && nspid[nspid.length - 1] === "1") return pid;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new LabError(`the LTSP server container did not start; see ${this.opts.consoleLog}`);
  }

  /** Runs a shell command as root inside the server. */
  async execute(command: string, timeoutMs = 60_000): Promise<{ rc: number; output: string }> {
    const r = await execa("nsenter", ["-t", String(this.leader), "-a", "--", "/bin/sh", "-c", command], {
      reject: false,
      all: true,
      timeout: timeoutMs,
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" },
      extendEnv: false,
    });
    return { rc: r.exitCode ?? 124, output: r.all ?? "" };
  }

  async succeed(command: string, timeoutMs?: number): Promise<string> {
    const r = await this.execute(command, timeoutMs);
    if (r.rc !== 0) throw new CommandFailed(this.name, command, r.rc, r.output);
    return r.output;
  }

  async waitUntilSucceeds(command: string, timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let last = { rc: -1, output: "" };
    while (Date.now() < deadline) {
      last = await this.execute(command, 20_000);
      if (last.rc === 0) return last.output;
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new CommandFailed(this.name, `${command} (waited ${timeoutMs / 1000} s)`, last.rc, last.output);
  }

  consoleTail(lines = 60): string {
    return existsSync(this.opts.consoleLog) ? tail(readFileSync(this.opts.consoleLog, "utf8"), lines) : "";
  }

  stop(): void {
    this.undo();
  }
}

function descendants(root: number): number[] {
  const out: number[] = [];
  const queue = [root];
  while (queue.length) {
    const pid = queue.shift()!;
    for (const task of safeList(`/proc/${pid}/task`)) {
      for (const c of safeRead(`/proc/${pid}/task/${task}/children`).split(/\s+/).filter(Boolean)) {
        out.push(Number(c));
        queue.push(Number(c));
      }
    }
  }
  return out;
}

function safeRead(p: string): string {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return "";
  }
}

function safeList(p: string): string[] {
  try {
    return readdirSync(p);
  } catch {
    return [];
  }
}

export function tail(text: string, lines: number): string {
  return text.split("\n").slice(-lines).join("\n");
}
