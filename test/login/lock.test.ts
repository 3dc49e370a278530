// The per-user lock (flock held by a small sh child): one holder at a time, a holder that
// deletes the lock file (the last logout does) does not let a waiter lock a dead file, and a
// holder that dies (a crashed hook) releases it.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LockTimeout, takeLock } from "../../src/login/lock.js";
import { ROOT, sleep } from "./harness.js";

const dirs: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "pershome-lock-"));
  dirs.push(d);
  return path.join(d, "user");
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe("the user lock", () => {
  it("has one holder at a time; a waiter gets it on release, on the file as it is now", async () => {
    const dir = tmp();
    const a = await takeLock(dir, 5);
    let bHas = false;
    const b = takeLock(dir, 10).then((l) => ((bHas = true), l));
    await sleep(400);
    expect(bHas).toBe(false);
    // The holder removes the lock file and its folder (as the last logout does), then releases.
    fs.unlinkSync(`${dir}/lock`);
    fs.rmdirSync(dir);
    await a.release();
    const held = await b;
    expect(bHas).toBe(true);
    expect(fs.existsSync(`${dir}/lock`)).toBe(true);
    await expect(takeLock(dir, 1)).rejects.toBeInstanceOf(LockTimeout);
    await held.release();
    const again = await takeLock(dir, 1);
    await again.release();
  });

  it("is released when its holder dies", async () => {
    const dir = tmp();
    const code = `import("${ROOT}/dist/src/login/lock.js").then(async (m) => { await m.takeLock(${JSON.stringify(dir)}, 5); console.log("held"); setInterval(() => {}, 1000); });`;
    const child = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((resolve) =>
      child.stdout.on("data", (d: Buffer) => d.toString().includes("held") && resolve()),
    );
    await expect(takeLock(dir, 1)).rejects.toBeInstanceOf(LockTimeout);
    child.kill("SIGKILL");
    const l = await takeLock(dir, 5);
    await l.release();
  });
});
