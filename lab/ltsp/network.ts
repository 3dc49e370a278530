import { existsSync, readdirSync } from "node:fs";
import { execa } from "execa";
import { atTeardown, quietly } from "./teardown.js";

// The lab's network: one network namespace holding a bridge (the "lab switch", 10.77.0.1/24 is
// the server's address on it) and one tap per client. Nothing in it reaches the host's network,
// and no traffic leaves it.

export const SERVER_IP = "10.77.0.1";
const PREFIX = "pershome-lab-";

export class LabNetwork {
  private readonly undo: () => void;
  private readonly taps = new Set<string>();

  private constructor(readonly namespace: string) {
    this.undo = atTeardown(`netns ${namespace}`, () => quietly("ip", ["netns", "del", namespace]));
  }

  static async create(): Promise<LabNetwork> {
    await removeStaleNamespaces();
    const ns = `${PREFIX}${process.pid}`;
    await execa("ip", ["netns", "add", ns]);
    const net = new LabNetwork(ns);
    const ip = (...a: string[]): Promise<unknown> => execa("ip", ["-n", ns, ...a]);
    await ip("link", "set", "lo", "up");
    await ip("link", "add", "br-lab", "type", "bridge");
    await ip("addr", "add", `${SERVER_IP}/24`, "dev", "br-lab");
    await ip("link", "set", "br-lab", "up");
    return net;
  }

  /** Adds a tap for one client, plugged into the bridge. */
  async addTap(name: string): Promise<string> {
    const tap = `tap-${name}`.slice(0, 15);
    if (this.taps.has(tap)) return tap;
    await execa("ip", ["-n", this.namespace, "tuntap", "add", "dev", tap, "mode", "tap"]);
    await execa("ip", ["-n", this.namespace, "link", "set", tap, "master", "br-lab", "up"]);
    this.taps.add(tap);
    return tap;
  }

  /** The command prefix that runs a program inside the lab's namespace. */
  exec(argv: string[]): string[] {
    return ["ip", "netns", "exec", this.namespace, ...argv];
  }

  get path(): string {
    return `/run/netns/${this.namespace}`;
  }

  destroy(): void {
    this.undo();
  }
}

/** Namespaces left by a lab run whose process no longer exists (it was SIGKILLed). */
async function removeStaleNamespaces(): Promise<void> {
  if (!existsSync("/run/netns")) return;
  for (const n of readdirSync("/run/netns")) {
    if (!n.startsWith(PREFIX)) continue;
    const pid = Number(n.slice(PREFIX.length));
    if (Number.isInteger(pid) && !existsSync(`/proc/${pid}`))
      await execa("ip", ["netns", "del", n], { reject: false });
  }
}
