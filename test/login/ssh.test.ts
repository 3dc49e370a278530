// Logging in by key through a private sshd (UsePAM yes, our PAM service): the shell's $HOME is
// the stick from the first command, PAM messages reach a terminal login, an ssh session shares
// the mount with another session, and a program left running by the ssh session is dealt with.
import fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoginLab, type Sshd, type TestUser, waitFor } from "./harness.js";

let lab: LoginLab;
let sshd: Sshd;
let marked: TestUser;
let listed: TestUser;
let unlucky: TestUser;
const timings: string[] = [];

beforeAll(async () => {
  lab = new LoginLab();
  marked = await lab.addUser();
  listed = await lab.addUser();
  unlucky = await lab.addUser();
  sshd = await lab.startSshd();
});

afterAll(async () => {
  await lab?.cleanup();
  if (timings.length)
    console.log(`ssh timings (key login to the command's exit):\n  ${timings.join("\n  ")}`);
});

describe("ssh key logins", () => {
  it("opt-in by the marker in the normal home: the ssh session's $HOME is the stick from the first command", async () => {
    const stick = await lab.addStick({ files: { "notes.txt": "stick notes\n" } });
    lab.writeList("");
    lab.setConfig({ stick_devices: stick.loop });
    fs.writeFileSync(`${marked.home}/.persistent_home`, "");
    const log = lab.logFromHere();

    const t0 = Date.now();
    const r = await sshd.run(
      marked,
      'findmnt -no SOURCE,FSTYPE --target "$HOME"; pwd; cat notes.txt; echo from-ssh > ssh.txt',
    );
    timings.push(`marker opt-in, exFAT stick: ${Date.now() - t0} ms`);
    expect(r.code, r.stderr + sshd.stderr()).toBe(0);
    expect(r.stdout.split("\n").map((l) => l.trim().replace(/\s+/g, " "))).toEqual([
      `${lab.stickHome(marked)} fuse.pershome`,
      marked.home,
      "stick notes",
    ]);
    await lab.expectClean(marked, stick);
    expect(log()).toContain(`opted in (marker ${marked.home}/.persistent_home exists)`);
    expect(log()).toMatch(
      new RegExp(`open user=${marked.name}: open \\(${lab.service} ssh from 127\\.0\\.0\\.1 pid \\d+\\)`),
    );
    expect(await lab.onStick(stick, (root) => fs.readFileSync(`${root}/pershome/ssh.txt`, "utf8"))).toBe(
      "from-ssh\n",
    );
    // The marker stays in the normal home, under the mount, and was not copied to the stick.
    expect(fs.existsSync(`${marked.home}/.persistent_home`)).toBe(true);
  });

  it("a terminal login is told through PAM when there is no stick", async () => {
    lab.writeList(`${unlucky.name}\n`);
    lab.setConfig({ stick_devices: "/dev/pershome-no-such-stick" });
    const log = lab.logFromHere();
    const r = await sshd.run(unlucky, null, 'findmnt -no FSTYPE --target "$HOME"; exit\n');
    expect(r.stdout).toContain("pershome: no USB stick with a pershome folder was found");
    expect(r.stdout).not.toContain("fuse.pershome");
    await waitFor("the close", () => log().includes(`close user=${unlucky.name}`));
    expect(log()).toContain("skipped /dev/pershome-no-such-stick: listed in stick_devices but not present");
    expect(lab.leftovers(unlucky)).toEqual([]);
  });

  it("an ssh session and another session share the mount; the ssh logout keeps it for the other", async () => {
    const stick = await lab.addStick();
    lab.writeList(`${listed.name}\n`);
    lab.setConfig({ stick_devices: stick.loop });
    const log = lab.logFromHere();
    await lab.open(listed); // e.g. the desktop session

    const t0 = Date.now();
    const r = await sshd.run(listed, 'findmnt -no SOURCE --target "$HOME"');
    timings.push(`second session over ssh (shared mount): ${Date.now() - t0} ms`);
    expect(r.stdout.trim()).toBe(lab.stickHome(listed));
    await waitFor("the ssh session's close", () =>
      log().includes("1 other session(s) still open; the home stays mounted"),
    );
    expect(lab.homeIs(listed)).toBe("stick");

    await lab.close(listed);
    await lab.expectClean(listed, stick);
  });

  it("a program left running by an ssh session: the home is detached after logout_wait, the stick released", async () => {
    const stick = await lab.addStick();
    lab.writeList(`${listed.name}\n`);
    lab.setConfig({ stick_devices: stick.loop, logout_wait: "3" });
    const log = lab.logFromHere();
    const r = await sshd.run(
      listed,
      "cd ~ && (setsid sleep 300 </dev/null >/dev/null 2>&1 &) && echo started",
    );
    expect(r.stdout.trim()).toBe("started");
    await waitFor(
      "the wait in the background",
      () => log().includes("the wait continues in the background"),
      10_000,
    );
    await lab.expectClean(listed, stick, 20_000);
    expect(log()).toMatch(
      /the home was still in use after logout_wait = 3s; still using .*sleep \(pid \d+, uid \d+, cwd\)/,
    );
    expect(log()).toContain("it is safe to pull");
  });
});
