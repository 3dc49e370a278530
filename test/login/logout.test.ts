// Logout when things are not tidy: programs still using the home (bounded wait, then cleanup),
// the stick's driver killed during the session, the layer's daemon dying. After each: no
// mount, no daemon, no lock, and the next login works.
import fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoginLab, type Stick, type TestUser, processesWith, waitFor } from "./harness.js";

let lab: LoginLab;

beforeAll(() => {
  lab = new LoginLab();
});

afterAll(async () => {
  await lab?.cleanup();
});

async function userWithStick(
  config: Record<string, string> = {},
  files: Record<string, string> = {},
): Promise<{ u: TestUser; stick: Stick; log: () => string }> {
  const u = await lab.addUser();
  const stick = await lab.addStick({ files });
  lab.writeList(`${u.name}\n`);
  lab.setConfig({ stick_devices: stick.loop, ...config });
  return { u, stick, log: lab.logFromHere() };
}

function alive(pid: number): boolean {
  try {
    const state = fs.readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "")[0];
    return state !== "Z";
  } catch {
    return false;
  }
}

async function cwdIn(pid: number, dir: string): Promise<void> {
  await waitFor(`process ${pid} in ${dir}`, () => {
    try {
      return fs.readlinkSync(`/proc/${pid}/cwd`) === dir;
    } catch {
      return false;
    }
  });
}

describe("logout with programs still in the home", () => {
  it("a program that leaves during the wait: the logout finishes cleanly as soon as it is gone", async () => {
    const { u, stick, log } = await userWithStick({ logout_wait: "20" });
    await lab.open(u);
    const pid = lab.startAsUser(u, ["sleep", "2"], u.home);
    await cwdIn(pid, u.home);
    const t0 = Date.now();
    const c = await lab.close(u);
    expect(c.ms).toBeLessThan(5000);
    await lab.expectClean(u, stick, 20_000);
    const waited = Date.now() - t0;
    expect(waited).toBeLessThan(12_000);
    const text = log();
    expect(text).toContain(`sleep (pid ${pid}, uid ${u.uid}, cwd)`);
    expect(text).toMatch(/logout complete after waiting \d+\.\ds for programs to leave the home/);
    expect(text).not.toContain("detached the layer");
  });

  it("a program that stays: bounded wait, then the home is detached, the stick released, and the next login works", async () => {
    const { u, stick, log } = await userWithStick({ logout_wait: "4" }, { "a.txt": "A\n" });
    await lab.open(u);
    const pid = lab.startAsUser(u, ["sleep", "300"], u.home);
    await cwdIn(pid, u.home);

    const t0 = Date.now();
    const c = await lab.close(u);
    // The logout itself returns at once; the wait goes on in the background.
    expect(c.ms).toBeLessThan(3500);
    expect(lab.homeIs(u)).toBe("stick");
    expect(log()).toContain("waiting up to 4s (logout_wait)");
    expect(log()).toMatch(/the wait continues in the background \(pid \d+\)/);

    await lab.expectClean(u, stick, 20_000);
    const waited = Date.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(3500);
    expect(waited).toBeLessThan(15_000);
    const text = log();
    expect(text).toMatch(
      new RegExp(
        `the home was still in use after logout_wait = 4s; still using ${u.home}: .*sleep \\(pid ${pid}, uid ${u.uid}, cwd\\)`,
      ),
    );
    expect(text).toContain(`detached the layer from ${u.home} lazily`);
    expect(text).toMatch(/stopping the layer: daemon \d+ ended on SIGTERM/);
    expect(text).toContain(
      `unmounted the stick ${stick.loop} from ${lab.stateDir}/${u.name}/stick: it is safe to pull`,
    );
    // kill_leftovers is off: the program still runs, in a home that is gone.
    expect(alive(pid)).toBe(true);

    // The next login works although the old program still sits in the old, detached home.
    await lab.open(u);
    expect(lab.homeIs(u)).toBe("stick");
    expect((await lab.asUser(u, `cat ${u.home}/a.txt`)).stdout).toBe("A");
    await lab.close(u);
    await lab.expectClean(u, stick);
  });

  it("kill_leftovers = yes and waiting inside the PAM call: the user's program is ended and the home unmounted cleanly", async () => {
    const { u, stick, log } = await userWithStick({
      logout_wait: "3",
      kill_leftovers: "yes",
      logout_in_background: "no",
    });
    await lab.open(u);
    const pid = lab.startAsUser(u, ["sleep", "300"], u.home);
    await cwdIn(pid, u.home);

    const c = await lab.close(u);
    expect(c.ms).toBeGreaterThanOrEqual(2500);
    expect(lab.leftovers(u, stick)).toEqual([]);
    await waitFor(`process ${pid} gone`, () => !alive(pid), 5000);
    const text = log();
    expect(text).toContain(`kill_leftovers: ended the user's processes in the home: ${pid}`);
    expect(text.slice(text.lastIndexOf("kill_leftovers"))).toContain(`unmounted the layer from ${u.home}`);
    expect(text).not.toContain("detached the layer");
  });
});

describe("the stick fails during the session", () => {
  it("the stick's driver is killed: noticed and told, logout still cleans up, the next login works", async () => {
    const { u, stick, log } = await userWithStick({ watch_interval: "0.5" });
    await lab.open(u);
    const w = await lab.asUser(u, `echo kept > ${u.home}/kept.txt && sync ${u.home}/kept.txt && echo ok`);
    expect(w.stdout).toBe("ok");

    const driver = lab.stickDriver(stick);
    expect(driver).not.toBeNull();
    process.kill(driver!, "SIGKILL");

    // The watcher notices and leaves the message for the desktop.
    await waitFor(
      "the pulled-stick message",
      () => lab.message(u)?.includes("was removed or stopped working"),
      10_000,
    );
    expect(lab.message(u)).toContain("Plug the stick back in and log out (and in again), or just log out.");
    expect(log()).toMatch(
      new RegExp(`warn: stick ${stick.loop} lost during the session: .*; the user was told`),
    );
    // New changes cannot reach the stick any more.
    const write = await lab.asUser(u, `echo new > ${u.home}/after.txt`);
    expect(write.code).not.toBe(0);
    expect(write.stderr).toMatch(/Transport endpoint is not connected|Input\/output error/);

    await lab.close(u);
    await lab.expectClean(u, stick);
    expect(lab.message(u)).toBeNull();

    // A fresh login on the same stick: the home is back, with what was synced before.
    const o = await lab.open(u);
    expect(o.output).toContain("your home folder is on your USB stick");
    expect(lab.homeIs(u)).toBe("stick");
    expect((await lab.asUser(u, `cat ${u.home}/kept.txt`)).stdout).toBe("kept");
    await lab.close(u);
    await lab.expectClean(u, stick);
  });

  it("the layer's daemon dies and the session never closes: the user is told, the next login repairs the mount", async () => {
    const { u, stick, log } = await userWithStick({ watch_interval: "0.5" }, { "b.txt": "B\n" });
    await lab.open(u);
    const daemon = processesWith("dist/src/cli/main.js", "mount", `${u.home} `)[0]!.pid;
    process.kill(daemon, "SIGKILL");
    await waitFor("the daemon gone", () => !alive(daemon));
    // The dead mount stays (no auto_unmount over a home): saves fail loudly; the message says so.
    await waitFor("the stopped-home message", () => lab.message(u)?.includes("stopped working"), 10_000);
    expect(lab.message(u)).toContain("new changes cannot be saved");
    expect(log()).toMatch(
      /the home on stick \S+ stopped during the session: .*; the user was told to log out/,
    );

    const o = await lab.open(u);
    expect(o.output).toContain("your home folder is on your USB stick");
    expect(log()).toMatch(
      /the mounted home is broken \(.*\); cleaning it up before mounting again \(1 older session\(s\) no longer counted\)/,
    );
    expect(lab.homeIs(u)).toBe("stick");
    expect((await lab.asUser(u, `cat ${u.home}/b.txt`)).stdout).toBe("B");
    await lab.close(u);
    await lab.expectClean(u, stick);
  });
});
