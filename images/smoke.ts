// A smoke test of the lab images (not part of the harness): netns labsmoke with br-lab and tap0,
// the server booted with systemd-nspawn, one client netbooted with QEMU, the agent asked
// `uname -r; id joseph; pershome --version; ls /dev/fuse`. Cleans up everything it starts.
//   node dist/images/smoke.js [--keep-logs DIR]
import { createConnection, type Socket } from "node:net";
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { execa, type ResultPromise } from "execa";
import { buildLabImages } from "./index.js";

const NS = "labsmoke";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const t0 = performance.now();
const ts = () => ((performance.now() - t0) / 1000).toFixed(1).padStart(6) + "s";
const say = (s: string) => process.stdout.write(`${ts()} ${s}\n`);

async function sh(cmd: string, args: string[]): Promise<void> {
  await execa(cmd, args, { stdio: "inherit" });
}

class Agent {
  private buf = "";
  private waiters: Array<(line: string) => boolean> = [];
  constructor(private sock: Socket) {
    sock.on("data", (d: Buffer) => {
      this.buf += d.toString("utf8");
      let i;
      while ((i = this.buf.indexOf("\n")) >= 0) {
        const line = this.buf.slice(0, i).replace(/\r$/, "");
        this.buf = this.buf.slice(i + 1);
        this.waiters = this.waiters.filter((w) => !w(line));
      }
    });
  }
  wait(pred: (l: string) => boolean, ms: number): Promise<string> {
    return new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error("agent timeout")), ms);
      this.waiters.push((l) => {
        if (!pred(l)) return false;
        clearTimeout(t);
        res(l);
        return true;
      });
    });
  }
  send(line: string): void {
    this.sock.write(line + "\n");
  }
  async run(id: string, cmd: string, ms = 60_000): Promise<{ rc: number; out: string; ms: number }> {
    const s = performance.now();
    const p = this.wait((l) => l.startsWith(`R ${id} `), ms);
    this.send(`C ${id} ${Buffer.from(cmd).toString("base64")}`);
    const [, , rc, b64] = (await p).split(" ");
    return {
      rc: Number(rc),
      out: Buffer.from(b64 ?? "", "base64").toString("utf8"),
      ms: performance.now() - s,
    };
  }
}

async function main(): Promise<void> {
  const images = await buildLabImages({ log: (l) => say(l) });
  say(JSON.stringify(images));
  const logs =
    process.argv[2] === "--keep-logs" && process.argv[3] ? process.argv[3] : mkdtempSync("/tmp/labsmoke-");
  mkdirSync(logs, { recursive: true });
  const procs: ResultPromise[] = [];
  let nspawn: ResultPromise | undefined;
  try {
    await execa("ip", ["netns", "del", NS], { reject: false });
    await sh("ip", ["netns", "add", NS]);
    await sh("ip", ["-n", NS, "link", "add", "br-lab", "type", "bridge"]);
    await sh("ip", ["-n", NS, "addr", "add", "10.77.0.1/24", "dev", "br-lab"]);
    await sh("ip", ["-n", NS, "link", "set", "br-lab", "up"]);
    await sh("ip", ["-n", NS, "link", "set", "lo", "up"]);
    await sh("ip", ["-n", NS, "tuntap", "add", "dev", "tap0", "mode", "tap"]);
    await sh("ip", ["-n", NS, "link", "set", "tap0", "master", "br-lab", "up"]);
    say("netns up; booting the server");
    nspawn = execa(
      "systemd-nspawn",
      [
        "--register=no",
        "--keep-unit",
        "-D",
        images.serverRoot,
        "-M",
        "ltsp-server",
        `--network-namespace-path=/run/netns/${NS}`,
        "--capability=CAP_NET_ADMIN,CAP_NET_RAW",
        `--bind-ro=${images.bootDir}:/srv/http/boot`,
        "--console=pipe",
        "-b",
      ],
      {
        stdout: { file: join(logs, "server.log") },
        stderr: { file: join(logs, "server.err") },
        stdin: "ignore",
        reject: false,
      },
    );
    // the server is up when its httpd serves boot.ipxe
    for (let i = 0; ; i++) {
      const r = await execa(
        "ip",
        ["netns", "exec", NS, "busybox", "wget", "-q", "-O", "-", "http://10.77.0.1/boot/boot.ipxe"],
        { reject: false },
      );
      if (r.exitCode === 0) break;
      if (i > 120) throw new Error("server httpd not up after 60 s");
      await sleep(500);
    }
    say("server serves boot.ipxe; booting the client");
    const tBoot = performance.now();
    const qemu = execa(
      "ip",
      [
        "netns",
        "exec",
        NS,
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-m",
        "1536",
        "-boot",
        "n",
        "-netdev",
        "tap,id=n0,ifname=tap0,script=no,downscript=no",
        "-device",
        "e1000,netdev=n0,mac=52:54:00:77:00:11",
        "-serial",
        `file:${join(logs, "console.log")}`,
        "-serial",
        `unix:${join(logs, "agent.sock")},server=on,wait=off`,
        "-qmp",
        `unix:${join(logs, "qmp.sock")},server=on,wait=off`,
        "-device",
        "qemu-xhci,id=xhci",
        "-display",
        "none",
        "-monitor",
        "none",
      ],
      { stdio: ["ignore", "inherit", "inherit"], reject: false },
    );
    procs.push(qemu);
    // host-side milestones from the console: kernel started, initramfs handed over to systemd
    const marks: Record<string, number> = {};
    const watch = setInterval(() => {
      let c = "";
      try {
        c = readFileSync(join(logs, "console.log"), "utf8");
      } catch {
        return;
      }
      const sec = (performance.now() - tBoot) / 1000;
      if (marks.kernel === undefined && c.includes("Linux version")) marks.kernel = sec;
      if (marks.switchRoot === undefined && c.includes("switch_root to ")) marks.switchRoot = sec;
      if (marks.agentUnit === undefined && c.includes("Started \x1b[0;1;39mpershome-lab-agent"))
        marks.agentUnit = sec;
    }, 200);
    watch.unref();
    while (!existsSync(join(logs, "agent.sock"))) await sleep(100);
    const sock = createConnection(join(logs, "agent.sock"));
    sock.on("error", (e) => say(`agent socket: ${e.message}`));
    await new Promise((r) => sock.once("connect", r));
    const agent = new Agent(sock);
    // ask until the agent answers (it may have said READY before we connected)
    let ready = "";
    for (;;) {
      const p = agent.wait((l) => l.startsWith("READY "), 2000).catch(() => "");
      agent.send("PING smoke");
      ready = await p;
      if (ready) break;
      if (performance.now() - tBoot > 300_000) throw new Error("no READY from the agent in 300 s");
    }
    const bootMs = performance.now() - tBoot;
    say(`agent: ${ready} (boot to agent ${(bootMs / 1000).toFixed(1)} s)`);
    say(`milestones after QEMU start (s): ${JSON.stringify(marks)}`);
    const r1 = await agent.run("1", "uname -r; id joseph; pershome --version; ls /dev/fuse");
    say(`R 1 rc=${r1.rc} (${r1.ms.toFixed(0)} ms):\n${r1.out}`);
    const rtts: number[] = [];
    for (let i = 0; i < 5; i++) rtts.push((await agent.run(`t${i}`, "true")).ms);
    say(`round-trip of true: ${rtts.map((x) => x.toFixed(0)).join(", ")} ms`);
    const [slow, fast] = await Promise.all([
      agent.run("slow", "sleep 3; echo slow"),
      agent.run("fast", "echo fast"),
    ]);
    say(`concurrent: fast ${fast.ms.toFixed(0)} ms, slow ${slow.ms.toFixed(0)} ms`);
    const big = await agent.run("big", "head -c 3000000 /dev/zero | tr '\\0' x; echo; exit 3");
    say(`big: rc=${big.rc} ${big.out.length} chars, starts ${JSON.stringify(big.out.slice(0, 80))}`);
    const settle = await agent.run(
      "settle",
      "systemctl is-system-running --wait; systemd-analyze; ip -4 addr show eth0 | grep inet; hostname",
      300_000,
    );
    say(`settled (${((performance.now() - tBoot) / 1000).toFixed(1)} s after QEMU start):\n${settle.out}`);
    const blame = await agent.run(
      "blame",
      "systemd-analyze blame | head -12; systemctl --failed --no-legend",
    );
    say(blame.out);
    sock.destroy();
  } finally {
    for (const p of procs) p.kill("SIGKILL");
    await Promise.all(procs.map((p) => p.catch(() => undefined)));
    if (nspawn) {
      nspawn.kill("SIGTERM");
      const t = setTimeout(() => nspawn?.kill("SIGKILL"), 15_000);
      await nspawn.catch(() => undefined);
      clearTimeout(t);
    }
    await execa("ip", ["netns", "del", NS], { reject: false });
    say(`cleaned up; logs in ${logs}`);
    try {
      const c = readFileSync(join(logs, "console.log"), "utf8");
      say(
        "console (lab-initrd lines):\n" +
          c
            .split("\n")
            .filter((l) => l.includes("lab-initrd"))
            .join("\n"),
      );
    } catch {
      /* none */
    }
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`smoke: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
