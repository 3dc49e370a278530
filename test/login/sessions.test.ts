// Login and logout through a real PAM stack (our own service, the shipped pam_exec line, driven
// by pamtester), with exFAT sticks on loop devices: who gets the stick, what the user is told,
// and that every logout leaves no mount, daemon or lock behind.
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compareDevices } from "../../src/login/stick-discovery.js";
import { LoginLab, ROOT, mountAt, must, processesWith, sh } from "./harness.js";

let lab: LoginLab;
const timings: string[] = [];

beforeAll(() => {
  lab = new LoginLab();
});

afterAll(async () => {
  await lab?.cleanup();
  if (timings.length)
    console.log(
      `login timings (pamtester open, whole PAM call / hook's own measure):\n  ${timings.join("\n  ")}`,
    );
});

function hookReadyMs(user: string): string {
  const all = [
    ...lab.log().matchAll(new RegExp(`user=${user} .*home ready (\\d+) ms after the hook started`, "g")),
  ];
  return all.at(-1)?.[1] ?? "?";
}

describe("login with pamtester", () => {
  it("opt-in by the list: the home is the stick; logout writes everything and leaves nothing", async () => {
    const u = await lab.addUser();
    const stick = await lab.addStick({ label: "CLASS3B", files: { "hello.txt": "from the stick\n" } });
    lab.setConfig({ stick_devices: stick.loop });
    lab.writeList(`# class 3B\n${u.name}\n`);

    const o = await lab.open(u);
    timings.push(`first login: ${o.ms} ms / ${hookReadyMs(u.name)} ms`);
    expect(o.output).toContain(
      `pershome: your home folder is on your USB stick "CLASS3B" (${path.basename(stick.loop)}).`,
    );
    expect(lab.homeIs(u)).toBe("stick");
    // pam_exec returned although the daemon runs on: it holds nothing of the hook's (fd 1 is its log).
    expect(o.ms).toBeLessThan(10_000);
    const daemons = processesWith("dist/src/cli/main.js", "mount", `${u.home} `);
    expect(daemons).toHaveLength(1);
    const daemon = daemons[0]!.pid;
    expect(fs.readlinkSync(`/proc/${daemon}/fd/0`)).toBe("/dev/null");
    expect(fs.readlinkSync(`/proc/${daemon}/fd/1`)).toBe(`${lab.stateDir}/${u.name}/layer.log`);
    expect(daemons[0]!.cmd).toContain(`--owner ${u.uid}:${u.gid} --allow-other`);
    // The stick is mounted privately: root-only state folder, nosuid,nodev, the user's ids, private masks.
    const stickMount = fs
      .readFileSync("/proc/self/mountinfo", "utf8")
      .split("\n")
      .find((l) => l.includes(` ${lab.stateDir}/${u.name}/stick `))!;
    expect(stickMount).toMatch(/nosuid,nodev/);
    expect(fs.statSync(`${lab.stateDir}/${u.name}`).mode & 0o777).toBe(0o700);
    expect(fs.statSync(`${lab.stateDir}/${u.name}/stick`).uid).toBe(u.uid);

    const r = await lab.asUser(
      u,
      `cat ${u.home}/hello.txt && echo written > ${u.home}/new.txt && stat -c %u ${u.home}`,
    );
    expect(r.stdout).toBe(`from the stick\n${u.uid}`);

    const c = await lab.close(u);
    timings.push(`logout: ${c.ms} ms`);
    await lab.expectClean(u, stick);
    expect(lab.homeIs(u)).toBe("normal");
    expect(await lab.onStick(stick, (root) => fs.readFileSync(`${root}/pershome/new.txt`, "utf8"))).toBe(
      "written\n",
    );
    const log = lab.log();
    expect(log).toMatch(
      new RegExp(
        `open user=${u.name}: open \\(${lab.service} pid \\d+\\): opted in \\(listed in ${lab.listFile}\\)`,
      ),
    );
    expect(log).toContain(`unmounted the layer from ${u.home}`);
    expect(log).toMatch(/the layer wrote everything to the stick and ended/);
    expect(log).toContain(
      `unmounted the stick ${stick.loop} from ${lab.stateDir}/${u.name}/stick: it is safe to pull`,
    );
    // Layer first, then the stick.
    expect(log.indexOf(`unmounted the layer from ${u.home}`)).toBeLessThan(
      log.indexOf(`unmounted the stick ${stick.loop}`),
    );
  });

  it("a home that is itself a mount (LTSP's SSHFS home, NFS): the layer stacks on it, logout leaves it as it was", async () => {
    // Found in the LTSP lab: pamltsp mounts the server's home at the password check, pershome
    // mounts the stick over it; the logout took the remaining home mount for a failed unmount,
    // waited in the background, and the stick was still mounted when the student pulled it.
    const u = await lab.addUser();
    const stick = await lab.addStick({ label: "NETHOME" });
    lab.setConfig({ stick_devices: stick.loop });
    lab.writeList(`${u.name}\n`);
    await must("mount", ["-t", "tmpfs", "-o", "mode=0755", "nethome", u.home]);
    try {
      fs.writeFileSync(`${u.home}/on-the-server.txt`, "network home\n");
      await lab.open(u);
      expect(lab.homeIs(u)).toBe("stick");
      const c = await lab.close(u);
      await lab.expectClean(u, stick);
      expect(lab.homeIs(u)).toBe("tmpfs nethome");
      expect(fs.readFileSync(`${u.home}/on-the-server.txt`, "utf8")).toBe("network home\n");
      const log = lab.log();
      expect(log).toContain(`unmounted the layer from ${u.home}`);
      expect(log).toContain(
        `unmounted the stick ${stick.loop} from ${lab.stateDir}/${u.name}/stick: it is safe to pull`,
      );
      expect(log).not.toMatch(
        new RegExp(`user=${u.name} .*(still in use|unmounting the layer from .* failed)`),
      );
      // the stick was released by the logout itself, not by a wait in the background
      expect(c.output).not.toContain("background");
    } finally {
      await sh("umount", ["-l", u.home]);
    }
  });

  it("a user not opted in keeps the normal home, and nothing is mounted or created", async () => {
    const u = await lab.addUser();
    const stick = await lab.addStick();
    lab.setConfig({ stick_devices: stick.loop });
    lab.writeList("someone-else\n");

    const o = await lab.open(u);
    expect(o.output).not.toContain("pershome:");
    expect(lab.homeIs(u)).toBe("normal");
    expect(fs.existsSync(`${lab.stateDir}/${u.name}`)).toBe(false);
    expect(lab.stickDriver(stick)).toBeNull();
    expect(lab.log()).toContain(`user=${u.name}: open (${lab.service} pid`);
    expect(lab.log()).toContain(
      `not opted in (not listed in ${lab.listFile} and no ${u.home}/.persistent_home); normal home`,
    );

    await lab.close(u);
    expect(lab.log()).toMatch(
      new RegExp(`close user=${u.name}: close \\(.*\\): no stick home is mounted; nothing to do`),
    );
    expect(lab.leftovers(u, stick)).toEqual([]);
  });

  it("admin-wide: opt_in = everyone takes an unlisted user, opt_in = nobody refuses a listed one", async () => {
    const u = await lab.addUser();
    const stick = await lab.addStick();
    lab.writeList("");
    lab.setConfig({ stick_devices: stick.loop, opt_in: "everyone" });
    await lab.open(u);
    expect(lab.homeIs(u)).toBe("stick");
    await lab.close(u);
    await lab.expectClean(u, stick);

    lab.writeList(`${u.name}\n`);
    lab.setConfig({ stick_devices: stick.loop, opt_in: "nobody" });
    await lab.open(u);
    expect(lab.homeIs(u)).toBe("normal");
    expect(lab.log()).toContain(`user=${u.name}: open (${lab.service} pid`);
    expect(lab.log()).toMatch(/not opted in \(opt_in = nobody\)/);
    await lab.close(u);
    expect(lab.leftovers(u, stick)).toEqual([]);
  });

  it("no stick: the normal home, and the user is told why and how to fix it (PAM and desktop notifier)", async () => {
    const u = await lab.addUser();
    lab.writeList(`${u.name}\n`);
    // Real discovery: removable FAT disks and partitions only (this machine has none).
    lab.setConfig({});

    const o = await lab.open(u);
    expect(lab.homeIs(u)).toBe("normal");
    expect(o.output).toContain(
      "pershome: no USB stick with a pershome folder was found, so you are using this computer's usual home folder",
    );
    expect(o.output).toContain(
      'If the stick is new, first prepare it: run "pershome gui" (or "pershome init") with the stick plugged in, or create a folder called "pershome" at the top of the stick on any computer.',
    );
    expect(lab.log()).toMatch(/stick discovery: 0 candidate\(s\) \(removable devices only\)/);
    expect(lab.log()).toContain("no FAT32/exFAT stick found: normal home; the user was told how to fix it");

    // The desktop notifier's message: the same words, readable only by the user.
    const file = path.join(lab.messageDir, u.name);
    expect(lab.message(u)).toContain("no USB stick with a pershome folder was found");
    const st = fs.statSync(file);
    expect([st.uid, st.mode & 0o777]).toEqual([u.uid, 0o600]);
    expect(fs.statSync(lab.messageDir).mode & 0o777).toBe(0o711);

    // The notifier (as the user, in the session) shows it with notify-send or zenity.
    const fake = path.join(lab.dir, "fakebin");
    fs.mkdirSync(fake, { recursive: true, mode: 0o755 });
    const shown = path.join(lab.dir, "shown.txt");
    fs.writeFileSync(shown, "");
    fs.chmodSync(shown, 0o666);
    for (const n of ["notify-send", "zenity"])
      fs.writeFileSync(path.join(fake, n), `#!/bin/sh\nprintf '%s|' "$0" "$@" >> ${shown}\n`, {
        mode: 0o755,
      });
    const n = await lab.asUser(
      u,
      `PATH=${fake}:/usr/bin:/bin PERSHOME_NOTIFY_ONCE=1 PERSHOME_MESSAGE_DIR=${lab.messageDir} ${ROOT}/bin/pershome-notify`,
    );
    expect(n.code).toBe(0);
    await new Promise((r) => setTimeout(r, 300)); // zenity is started in the background
    expect(fs.readFileSync(shown, "utf8")).toMatch(
      /(notify-send|zenity)\|.*no USB stick with a pershome folder was found/,
    );

    await lab.close(u);
    expect(lab.leftovers(u)).toEqual([]);
  });

  it("a stick without /pershome: the normal home, the stick is released, the user is told what to create", async () => {
    const u = await lab.addUser();
    const stick = await lab.addStick({ label: "HOLIDAY", pershome: false });
    lab.writeList(`${u.name}\n`);
    lab.setConfig({ stick_devices: stick.loop });

    const o = await lab.open(u);
    expect(lab.homeIs(u)).toBe("normal");
    expect(o.output).toContain(
      `pershome: the USB stick "HOLIDAY" (${path.basename(stick.loop)}) has no pershome folder`,
    );
    expect(o.output).toContain(
      'To keep your home on the stick, prepare it: run "pershome gui" (or "pershome init") with the stick plugged in, or create a folder called "pershome" at the top of the stick on any computer; then log out and log in again with the stick plugged in.',
    );
    expect(lab.message(u)).toContain("has no pershome folder");
    expect(lab.log()).toContain(`${stick.loop} has no pershome folder; unmounting it`);
    expect(lab.stickDriver(stick)).toBeNull();
    expect(lab.leftovers(u, stick)).toEqual([]);
    // Nothing was written to it.
    expect(await lab.onStick(stick, (root) => fs.readdirSync(root))).toEqual([]);
    await lab.close(u);
    expect(lab.leftovers(u, stick)).toEqual([]);
  });

  it("a layer still starting when mount_timeout runs out: the normal home, the user is told it took too long, nothing is left", async () => {
    const u = await lab.addUser();
    const stick = await lab.addStick({ label: "SLOWSTICK" });
    lab.writeList(`${u.name}\n`);
    lab.setConfig({ stick_devices: stick.loop, mount_timeout: "1" });
    // A hung stick or a very slow machine, made real: the layer's daemon is stopped (SIGSTOP)
    // as soon as it exists, so it never mounts.
    const stopped = new Set<number>();
    const freezer = setInterval(() => {
      for (const p of processesWith("dist/src/cli/main.js", "mount", u.home + " "))
        if (!stopped.has(p.pid)) {
          process.kill(p.pid, "SIGSTOP");
          stopped.add(p.pid);
        }
    }, 5);
    let o: { output: string };
    try {
      o = await lab.open(u);
    } finally {
      clearInterval(freezer);
    }
    expect(stopped.size, "the layer's daemon was never seen").toBeGreaterThan(0);
    expect(lab.homeIs(u)).toBe("normal");
    expect(o.output).toContain(
      `pershome: your USB stick "SLOWSTICK" (${path.basename(stick.loop)}) could not be used (it took too long to open), so you are using this computer's usual home folder.`,
    );
    expect(lab.log()).toMatch(
      /it was still starting after mount_timeout = 1s: raise it in \/etc\/pershome\/pershome\.conf/,
    );
    // the stopped daemon was killed, the stick released: nothing of the session is left
    await lab.expectClean(u, stick);
    await lab.close(u);
    expect(lab.leftovers(u, stick)).toEqual([]);
  });

  it("two concurrent sessions share one mount; only the last logout unmounts", async () => {
    const u = await lab.addUser();
    const stick = await lab.addStick();
    lab.writeList(`${u.name}\n`);
    lab.setConfig({ stick_devices: stick.loop });

    await lab.open(u);
    const daemon = processesWith("dist/src/cli/main.js", "mount", `${u.home} `);
    const second = await lab.open(u);
    timings.push(`second (shared) login: ${second.ms} ms`);
    expect(second.output).toContain("(shared with your other open session)");
    expect(lab.log()).toMatch(
      new RegExp(`user=${u.name} stick=${stick.loop} "${stick.label}": session 2 opened`),
    );
    expect(processesWith("dist/src/cli/main.js", "mount", `${u.home} `)).toEqual(daemon);
    expect(mountsCount(u.home)).toBe(1);

    await lab.close(u);
    expect(lab.homeIs(u)).toBe("stick");
    expect(lab.log()).toContain("1 other session(s) still open; the home stays mounted");
    expect(lab.leftovers(u, stick).length).toBeGreaterThan(0);

    await lab.close(u);
    await lab.expectClean(u, stick);
    // A close with nothing open is harmless.
    await lab.close(u);
    expect(lab.leftovers(u, stick)).toEqual([]);
  });

  it("two logins at the same instant: one mounts, the other waits for the lock and shares", async () => {
    const u = await lab.addUser();
    const stick = await lab.addStick();
    lab.writeList(`${u.name}\n`);
    lab.setConfig({ stick_devices: stick.loop });
    const since = lab.logFromHere();
    const [a, b] = await Promise.all([lab.open(u), lab.open(u)]);
    expect(
      [a.output, b.output].filter((o) => o.includes("(shared with your other open session)")),
    ).toHaveLength(1);
    expect(processesWith("dist/src/cli/main.js", "mount", `${u.home} `)).toHaveLength(1);
    expect(processesWith("mount.exfat-fuse", `${stick.loop} `)).toHaveLength(1);
    expect(since().match(/session 1 opened/g)).toHaveLength(1);
    expect(since().match(/session 2 opened/g)).toHaveLength(1);
    await Promise.all([lab.close(u), lab.close(u)]);
    await lab.expectClean(u, stick);
  });

  it("a malformed list file: each bad line is logged with its number, the good lines still count", async () => {
    const u = await lab.addUser();
    const byUid = await lab.addUser();
    const stick = await lab.addStick();
    lab.setConfig({ stick_devices: stick.loop });
    lab.writeList(`# class 3B\n\nann smith\n${u.name}   # the new student\n$$$\n${byUid.uid}\n`);

    const since = lab.logFromHere();
    await lab.open(u);
    expect(lab.homeIs(u)).toBe("stick");
    const log = since();
    expect(log).toContain(
      `warn: ${lab.listFile} line 3: "ann smith" is more than one word (one user a line); line ignored`,
    );
    expect(log.split('line 3: "ann smith"').length - 1).toBe(1); // once per login
    expect(log).toContain(`warn: ${lab.listFile} line 5: "$$$" is not a user name; line ignored`);
    expect(log).toContain(`opted in (listed in ${lab.listFile})`);

    // Listed by uid: opted in; the only stick is in use by the other user, so it is skipped.
    const o2 = await lab.open(byUid);
    expect(since()).toContain(`opted in (uid ${byUid.uid} listed in ${lab.listFile})`);
    expect(since()).toMatch(
      new RegExp(`skipped ${stick.loop}: already mounted at ${lab.stateDir}/${u.name}/stick`),
    );
    expect(o2.output).toContain("no USB stick with a pershome folder was found");
    expect(lab.homeIs(byUid)).toBe("normal");

    await lab.close(byUid);
    await lab.close(u);
    await lab.expectClean(u, stick);
    expect(lab.leftovers(byUid)).toEqual([]);
  });

  it("two sticks with /pershome: the one labelled with the user name, else the first plugged in; the user is told", async () => {
    const u = await lab.addUser();
    const other = await lab.addStick({ label: "KINGSTON" });
    const named = await lab.addStick({ label: u.name.toUpperCase() });
    lab.writeList(`${u.name}\n`);
    lab.setConfig({ stick_devices: `${other.loop} ${named.loop}` });

    const o = await lab.open(u);
    expect(mountAt(`${lab.stateDir}/${u.name}/stick`)?.source).toBe(named.loop);
    expect(lab.homeIs(u)).toBe("stick");
    const n = (s: { loop: string }): string => path.basename(s.loop);
    expect(o.output).toContain(
      `pershome: your home folder is on the USB stick "${u.name.toUpperCase()}" (${n(named)}), which is labelled with your user name. ` +
        `The stick "KINGSTON" (${n(other)}) also has a pershome folder and was not used.`,
    );
    expect(lab.message(u)).toContain("was not used");
    expect(lab.stickDriver(other)).toBeNull();
    await lab.close(u);
    await lab.expectClean(u, named);

    // Without a label that matches: the first in device order.
    const third = await lab.addStick({ label: "SANDISK" });
    lab.setConfig({ stick_devices: `${third.loop} ${other.loop}` });
    const [first, second] = [third, other].sort((a, b) => compareDevices(a.loop, b.loop));
    const o2 = await lab.open(u);
    expect(mountAt(`${lab.stateDir}/${u.name}/stick`)?.source).toBe(first!.loop);
    expect(o2.output).toContain(
      `(${n(first!)}), the first one plugged in. The stick "${second!.label}" (${n(second!)}) also has a pershome folder`,
    );
    await lab.close(u);
    await lab.expectClean(u, first);
    expect(lab.leftovers(u, second)).toEqual([]);
  });

  it("an admin-given fixed path (LTSP5 ltspfs style /media/%u): the layer is mounted from it, the stick mount is left alone", async () => {
    const u = await lab.addUser();
    const stick = await lab.addStick({ label: "LTSPFS", files: { "note.txt": "on the fixed path\n" } });
    const media = path.join(lab.dir, "media");
    const at = path.join(media, u.name, "LTSPFS");
    fs.mkdirSync(at, { recursive: true });
    await must("mount.exfat-fuse", [
      "-o",
      `nosuid,nodev,uid=${u.uid},gid=${u.gid},dmask=0077,fmask=0177`,
      stick.loop,
      at,
    ]);
    try {
      lab.writeList(`${u.name}\n`);
      lab.setConfig({ stick_path: `${media}/%u` });
      await lab.open(u);
      expect(mountAt(u.home)).toMatchObject({ fstype: "fuse.pershome", source: `${at}/pershome` });
      expect((await lab.asUser(u, `cat ${u.home}/note.txt`)).stdout).toBe("on the fixed path");
      await lab.close(u);
      await lab.expectClean(u);
      expect(mountAt(at)?.fstype).toBe("fuseblk");
      expect(lab.log()).toContain(`stick folder ${at} is the admin's fixed path; not unmounted by pershome`);
    } finally {
      await sh("umount", [at]);
    }
  });
});

function mountsCount(p: string): number {
  return fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((l) => l.split(" ")[4] === p).length;
}
