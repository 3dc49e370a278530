import { EventEmitter } from "node:events";
import { connect, type Socket } from "node:net";
import { LabError } from "./errors.js";

// QEMU Machine Protocol over QEMU's unix socket: one JSON object a line. After the greeting we
// send qmp_capabilities; then each command gets exactly one reply ("return" or "error"), in
// order, and asynchronous events ({"event": ...}) may come in between.

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

export class QmpClient {
  private readonly events = new EventEmitter();
  private readonly pending: Pending[] = [];
  private buffer = "";
  private closed = false;
  /** Events seen so far, newest last (for waitForEvent to catch one that already came). */
  private readonly seen: QmpEvent[] = [];

  private constructor(private readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => this.onData(d));
    socket.on("close", () => this.onClose());
    socket.on("error", () => undefined);
  }

  /** Connects to a QMP socket, retrying while QEMU has not created it yet. */
  static async connect(path: string, timeoutMs = 30_000): Promise<QmpClient> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path);
          s.once("connect", () => resolve(s));
          s.once("error", reject);
        });
        const client = new QmpClient(socket);
        await client.greeting();
        await client.execute("qmp_capabilities");
        return client;
      } catch (e) {
        if (Date.now() > deadline) throw new LabError(`QMP socket ${path} did not answer: ${String(e)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  private greetingWaiter: ((ok: boolean) => void) | undefined;

  private greeting(): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("no QMP greeting")), 10_000);
      this.greetingWaiter = (ok) => {
        clearTimeout(t);
        if (ok) resolve();
        else reject(new Error("QMP closed before its greeting"));
      };
    });
  }

  /** Runs one QMP command; rejects with QEMU's error description. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closed) return Promise.reject(new LabError(`QMP ${command}: QEMU is gone`));
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ command, resolve: resolve as (v: unknown) => void, reject });
      this.socket.write(
        JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + "\n",
      );
    });
  }

  /** Resolves with the first event named `name` matching `pred`, seen after `since` (an index from eventMark()). */
  waitForEvent(
    name: string,
    pred: (e: QmpEvent) => boolean = () => true,
    timeoutMs = 30_000,
    since = 0,
  ): Promise<QmpEvent> {
    const already = this.seen.slice(since).find((e) => e.event === name && pred(e));
    if (already) return Promise.resolve(already);
    return new Promise((resolve, reject) => {
      const onEvent = (e: QmpEvent): void => {
        if (e.event !== name || !pred(e)) return;
        clearTimeout(t);
        this.events.off("event", onEvent);
        resolve(e);
      };
      const t = setTimeout(() => {
        this.events.off("event", onEvent);
        reject(new LabError(`QMP: no ${name} event within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      t.unref();
      this.events.on("event", onEvent);
    });
  }

  /** A position in the event history, to wait only for events that come after it. */
  eventMark(): number {
    return this.seen.length;
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(d: string): void {
    this.buffer += d;
    let nl: number;
    while ((nl = this.buffer.indexOf("\n")) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (!line) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if ("QMP" in msg) {
        this.greetingWaiter?.(true);
        this.greetingWaiter = undefined;
      } else if ("event" in msg) {
        const e = msg as unknown as QmpEvent;
        this.seen.push(e);
        if (this.seen.length > 1000) this.seen.splice(0, 500);
        this.events.emit("event", e);
      } else if ("return" in msg || "error" in msg) {
        const p = this.pending.shift();
        if (!p) continue;
        if ("error" in msg) {
          const err = msg["error"] as { class?: string; desc?: string };
          p.reject(new LabError(`QMP ${p.command}: ${err.desc ?? err.class ?? "error"}`));
        } else p.resolve(msg["return"]);
      }
    }
  }

  private onClose(): void {
    this.closed = true;
    this.greetingWaiter?.(false);
    for (const p of this.pending.splice(0))
      p.reject(new LabError(`QMP ${p.command}: QEMU closed the connection`));
  }
}
