// The login workload: login-to-home-ready through the PAM hook, as test/login drives it
// (pamtester on a PAM service of our own, an exFAT stick on a loop device, a real user), with
// names and paths of the bench's own (service pershome-bench-<id>, /run/pershome-bench-<id>,
// user phb<id>), so it never meets a test run. docs/benchmarks.md, "What runs".
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { ROOT } from "./candidates.js";
import { must, sh, sleep } from "./sh.js";

export interface LoginTimes {
  /** pamtester open_session: from the login program's call to the home being the stick */
  login: number;
  /** the hook's own "home ready N ms after the hook started" (without pamtester and bash) */
  hook: number;
  /** pamtester close_session, then until no daemon, mount or lock is left */
  logout: number;
}

const HOOK_SHIM = path.join(ROOT, "bin/pershome-pam-hook");
const PROFILE = path.join(ROOT, "data/pam-configs/pershome");

function fuseAt(mountpoint: string): string | undefined {
  for (const l of fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const [a, b] = l.split(" - ");
    if (!a || !b) continue;
    if (a.split(" ")[4] === mountpoint) return b.split(" ")[0];
  }
  return undefined;
}

/**
 * `repeat` logins and logouts of one user whose stick holds a small home (`files` files in 20
 * folders), each login with the page cache dropped first (a fresh PC after a reboot is colder,
 * an hour-old one warmer). Leaves nothing behind, even when a step fails.
 */
export async function runLogin(work: string, repeat: number, files = 2000): Promise<LoginTimes[]> {
  const id = randomBytes(3).toString("hex");
  const dir = path.join(work, `login-${id}`);
  const service = `pershome-bench-${id}`;
  const stateDir = `/run/pershome-bench-${id}`;
  const user = `phb${id}`;
  const config = path.join(dir, "pershome.conf");
  const logFile = path.join(dir, "pershome.log");
  const image = path.join(dir, "stick.img");
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  let loop = "";
  let home = "";
  const out: LoginTimes[] = [];
  try {
    await must(`useradd -m -s /bin/bash -K UID_MIN=30000 -K UID_MAX=39999 ${user}`);
    home = (await must(`getent passwd ${user}`)).trim().split(":")[5]!;
    await must(`truncate -s 256M '${image}' && mkfs.exfat -L BENCH '${image}' > /dev/null`);
    loop = (await must(`losetup -f --show '${image}'`)).trim();
    const look = path.join(dir, "look");
    fs.mkdirSync(look);
    await must(`mount.exfat-fuse -o nosuid,nodev ${loop} '${look}'`);
    await must(
      `python3 -c 'import os\nos.mkdir("pershome")\nfor d in range(20):\n os.mkdir(f"pershome/d{d}")\n for i in range(${Math.ceil(files / 20)}): open(f"pershome/d{d}/f{i}","w").write("x")'`,
      look,
    );
    await must(`umount '${look}'`);
    fs.writeFileSync(path.join(dir, "list"), `${user}\n`);
    fs.writeFileSync(
      config,
      [
        `list_file = ${path.join(dir, "list")}`,
        `log_file = ${logFile}`,
        "syslog = no",
        `state_dir = ${stateDir}`,
        `message_dir = ${path.join(dir, "messages")}`,
        "systemd = no",
        "watch_interval = 0.5",
        "logout_wait = 5",
        `stick_devices = ${loop}`,
        "",
      ].join("\n"),
    );
    fs.writeFileSync(logFile, "");
    const block = fs.readFileSync(PROFILE, "utf8").split(/^Session:\s*$/m)[1] ?? "";
    const session = (block.split("\n").find((l) => /^\s+\S/.test(l)) ?? "")
      .trim()
      .replace("/usr/lib/pershome/bin/pershome-pam-hook", HOOK_SHIM);
    fs.writeFileSync(
      `/etc/pam.d/${service}`,
      [
        `# pershome bench ${id}; removed when the bench ends`,
        "auth     required  pam_permit.so",
        "account  required  pam_permit.so",
        `session  ${session} --config ${config}`,
        "",
      ].join("\n"),
    );
    for (let i = 0; i < repeat; i++) {
      await must("sync; echo 3 > /proc/sys/vm/drop_caches");
      const logFrom = fs.readFileSync(logFile, "utf8").length;
      let t0 = process.hrtime.bigint();
      const open = await sh(`pamtester -v ${service} ${user} open_session`);
      const login = Number(process.hrtime.bigint() - t0) / 1e9;
      if (open.code !== 0) throw new Error(`pamtester open_session: ${open.out}${open.err}`);
      if (fuseAt(home) !== "fuse.pershome")
        throw new Error(`after login the home is not the stick (${fuseAt(home) ?? "not mounted"})`);
      const ready = /home ready (\d+) ms after the hook started/.exec(
        fs.readFileSync(logFile, "utf8").slice(logFrom),
      );
      t0 = process.hrtime.bigint();
      const close = await sh(`pamtester -v ${service} ${user} close_session`);
      if (close.code !== 0) throw new Error(`pamtester close_session: ${close.out}${close.err}`);
      for (let w = 0; w < 300 && (fuseAt(home) || fs.existsSync(`${stateDir}/${user}`)); w++) await sleep(50);
      const logout = Number(process.hrtime.bigint() - t0) / 1e9;
      if (fuseAt(home) || fs.existsSync(`${stateDir}/${user}`))
        throw new Error("logout left the home mounted");
      out.push({ login, hook: ready ? Number(ready[1]) / 1000 : NaN, logout });
    }
  } finally {
    await sh(`node '${path.join(ROOT, "dist/src/login/hook.js")}' --reset ${user} --config '${config}'`);
    if (home && fuseAt(home)) await sh(`umount -l '${home}'`);
    for (const p of (await sh(`pgrep -f 'mount.exfat-fuse.*${loop} '`)).out.split(/\s+/).filter(Boolean))
      if (loop) await sh(`kill -KILL ${p}`);
    if (loop) await sh(`losetup -d ${loop}`);
    fs.rmSync(`/etc/pam.d/${service}`, { force: true });
    // never "userdel -r" over a mounted home: it would empty the stick
    await sh(home && fuseAt(home) ? `userdel -f ${user}` : `userdel -f -r ${user} 2>/dev/null`);
    await sh(`rm -rf --one-file-system '${stateDir}' '${dir}'`);
  }
  return out;
}
