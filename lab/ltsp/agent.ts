import { connect, type Socket } from "node:net";
import { LabError } from "./errors.js";

// The host end of the lab agent (images/: a small program on the client's second serial port,
// the NixOS test driver's "backdoor"). One line each way, several commands may run at once:
//   host → agent:  C <id> <base64 command>        PING <token>
//   agent → host:  R <id> <rc> <base64 output>    READY <token|boot> <boot_id>

export interface AgentResult {
  rc: number;
  output: string;
}

interface Waiting {
  resolve: (r: AgentResult) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class AgentChannel {
  private socket: Socket | undefined;
  private buffer = "";
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();
  private readyWaiters: { token: string; resolve: (bootId: string) => void }[] = [];
  private lastBootId: string | undefined;

  constructor(
    private readonly name: string,
    private readonly socketPath: string,
  ) {}

  /** Connects to QEMU's listening socket (retrying while QEMU starts). */
  async connect(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        this.socket = await new Promise<Socket>((resolve, reject) => {
          const s = connect(this.socketPath);
          s.once("connect", () => resolve(s));
          s.once("error", reject);
        });
        break;
      } catch (e) {
        if (Date.now() > deadline)
          throw new LabError(`${this.name}: agent socket did not open: ${String(e)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    this.socket.setEncoding("latin1");
    this.socket.on("data", (d: string) => this.onData(d));
    this.socket.on("error", () => undefined);
    this.socket.on("close", () => this.failAll(`${this.name}: the machine went away`));
  }

  /**
   * Waits until the agent answers (it says READY when it starts, and to each PING). A fresh
   * boot may take a minute under TCG, so this pings every few seconds until `timeoutMs`.
   */
  async waitReady(timeoutMs: number): Promise<string> {
    const token = `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
    const got = new Promise<string>((resolve) => this.readyWaiters.push({ token, resolve }));
    const deadline = Date.now() + timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const ping = (): void => {
      this.socket?.write(`PING ${token}\n`);
      if (Date.now() < deadline) timer = setTimeout(ping, 3000);
    };
    ping();
    const timeout = new Promise<never>((_, reject) => {
      const t = setTimeout(
        () => reject(new LabError(`${this.name}: agent did not answer within ${timeoutMs / 1000} s`)),
        timeoutMs,
      );
      t.unref();
      void got.finally(() => clearTimeout(t));
    });
    try {
      return await Promise.race([got, timeout]);
    } finally {
      if (timer) clearTimeout(timer);
      this.readyWaiters = this.readyWaiters.filter((w) => w.token !== token);
    }
  }

  get bootId(): string | undefined {
    return this.lastBootId;
  }

  /** Runs `command` with sh -c as root on the machine; rejects only if the machine does not answer. */
  run(command: string, timeoutMs: number): Promise<AgentResult> {
    const socket = this.socket;
    if (!socket || socket.destroyed) return Promise.reject(new LabError(`${this.name}: not connected`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new LabError(`${this.name}: \`${command}\` did not finish within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      socket.write(`C ${id} ${Buffer.from(command, "utf8").toString("base64")}\n`);
    });
  }

  close(): void {
    this.socket?.destroy();
    this.failAll(`${this.name}: channel closed`);
  }

  private failAll(why: string): void {
    for (const [id, w] of this.waiting) {
      clearTimeout(w.timer);
      w.reject(new LabError(why));
      this.waiting.delete(id);
    }
  }

  private onData(d: string): void {
    this.buffer += d;
    let nl: number;
    while ((nl = this.buffer.indexOf("\n")) >= 0) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, "");
      this.buffer = this.buffer.slice(nl + 1);
      const parts = line.split(" ");
      if (parts[0] === "R" && parts.length >= 3) {
        const id = Number(parts[1]);
        const w = this.waiting.get(id);
        if (!w) continue;
        this.waiting.delete(id);
        clearTimeout(w.timer);
        w.resolve({ rc: Number(parts[2]), output: Buffer.from(parts[3] ?? "", "base64").toString("utf8") });
      } else if (parts[0] === "READY" && parts.length >= 3) {
        this.lastBootId = parts[2];
        for (const w of this.readyWaiters)
          if (w.token === parts[1] || parts[1] === "boot") w.resolve(parts[2] ?? "");
      }
    }
    // A line that never ends is noise on the port (e.g. the guest kernel before the agent ran).
    if (this.buffer.length > 64 * 1024 * 1024) this.buffer = "";
  }
}
