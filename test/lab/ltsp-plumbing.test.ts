// The lab harness's host-side plumbing against the real programs, without booting a guest: QMP
// to a paused QEMU (plugging and pulling a stick image as USB storage), the agent protocol over
// a real unix socket, the lab's network namespace.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startQemu } from "../../lab/microvm/vm.js";
import { AgentChannel } from "../../lab/ltsp/agent.js";
import { LabNetwork } from "../../lab/ltsp/network.js";
import { QmpClient } from "../../lab/ltsp/qmp.js";
import { makeFat32Stick } from "../../lab/sticks/index.js";

const dir = mkdtempSync("/tmp/ltsp-plumbing-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function pausedQemu(name: string): { qmp: string; kill: () => void } {
  const qmp = join(dir, `${name}.qmp`);
  const q = startQemu([
    "-nodefaults",
    "-no-user-config",
    "-machine",
    "pc",
    "-accel",
    "tcg",
    "-m",
    "64",
    "-display",
    "none",
    "-S",
    "-device",
    "qemu-xhci,id=xhci",
    "-qmp",
    `unix:${qmp},server=on,wait=off`,
  ]);
  return { qmp, kill: () => q.kill() };
}

describe("QMP client", () => {
  it("plugs a stick image as USB storage, pulls it (DEVICE_DELETED), and reports QEMU's errors", async () => {
    const img = await makeFat32Stick(join(dir, "s.img"), 40);
    const a = pausedQemu("a");
    const b = pausedQemu("b");
    const qa = await QmpClient.connect(a.qmp);
    const qb = await QmpClient.connect(b.qmp);
    try {
      expect((await qa.execute<{ status: string }>("query-status")).status).toBe("prelaunch");
      await qa.execute("blockdev-add", {
        "node-name": "s1",
        driver: "raw",
        file: { driver: "file", filename: img },
      });
      await qa.execute("device_add", {
        driver: "usb-storage",
        id: "s1",
        drive: "s1",
        bus: "xhci.0",
        removable: true,
        serial: "pershome-x",
      });
      const devs = await qa.execute<{ name: string; type: string }[]>("qom-list", {
        path: "/machine/peripheral",
      });
      expect(devs.map((d) => d.name)).toContain("s1");
      // The same image cannot be plugged into a second machine while the first holds it.
      await qb
        .execute("blockdev-add", {
          "node-name": "s1",
          driver: "raw",
          file: { driver: "file", filename: img },
        })
        .then(() => qb.execute("device_add", { driver: "usb-storage", id: "s1", drive: "s1", bus: "xhci.0" }))
        .then(
          () => expect.fail("a stick held by another machine was plugged"),
          (e: Error) => expect(e.message).toMatch(/lock/i),
        );
      const mark = qa.eventMark();
      await qa.execute("device_del", { id: "s1" });
      const ev = await qa.waitForEvent("DEVICE_DELETED", (e) => e.data?.["device"] === "s1", 10_000, mark);
      expect(ev.data?.["device"]).toBe("s1");
      await qa.execute("blockdev-del", { "node-name": "s1" });
      // Pulled from a: now b may take it.
      await qb.execute("blockdev-del", { "node-name": "s1" }).catch(() => undefined);
      await qb.execute("blockdev-add", {
        "node-name": "s2",
        driver: "raw",
        file: { driver: "file", filename: img },
      });
      await qb.execute("device_add", { driver: "usb-storage", id: "s2", drive: "s2", bus: "xhci.0" });
      await expect(qa.execute("no-such-command")).rejects.toThrow(
        /QMP no-such-command: .*not (been )?found/i,
      );
    } finally {
      qa.close();
      qb.close();
      a.kill();
      b.kill();
    }
  });
});

describe("agent channel", () => {
  it("matches concurrent replies to their commands, and sees READY", async () => {
    const sock = join(dir, "agent.sock");
    // A stand-in for the guest end, speaking the protocol of images/agent: replies out of order.
    const server = createServer((s: Socket) => {
      s.setEncoding("latin1");
      let buf = "";
      s.on("data", (d: string) => {
        buf += d;
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const [kind, a, b] = buf.slice(0, nl).split(" ");
          buf = buf.slice(nl + 1);
          if (kind === "PING") s.write(`READY ${a} boot-123\n`);
          if (kind === "C") {
            const cmd = Buffer.from(b ?? "", "base64").toString();
            const delay = cmd.includes("slow") ? 200 : 0;
            setTimeout(
              () => s.write(`R ${a} ${cmd.length} ${Buffer.from(`ran: ${cmd}`).toString("base64")}\n`),
              delay,
            );
          }
        }
      });
    });
    await new Promise<void>((r) => server.listen(sock, r));
    const ch = new AgentChannel("t", sock);
    try {
      await ch.connect();
      expect(await ch.waitReady(5000)).toBe("boot-123");
      const [slow, fast] = await Promise.all([ch.run("slow ünïcode", 5000), ch.run("fast", 5000)]);
      expect(slow).toEqual({ rc: 12, output: "ran: slow ünïcode" });
      expect(fast).toEqual({ rc: 4, output: "ran: fast" });
    } finally {
      ch.close();
      server.close();
    }
  });
});

describe("lab network", () => {
  it("makes a namespace with the lab switch and taps, and removes it", async () => {
    const net = await LabNetwork.create();
    try {
      await net.addTap("college");
      const links = execFileSync("ip", ["-n", net.namespace, "-o", "link"], { encoding: "utf8" });
      expect(links).toMatch(/br-lab/);
      expect(links).toMatch(/tap-college.*master br-lab/);
      expect(execFileSync("ip", ["-n", net.namespace, "-o", "addr"], { encoding: "utf8" })).toMatch(
        /10\.77\.0\.1\/24/,
      );
    } finally {
      net.destroy();
    }
    expect(existsSync(net.path)).toBe(false);
  });
});
