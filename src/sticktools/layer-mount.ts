/**
 * A temporary mount of the POSIX layer over a stick's /pershome, for init --skel and migrate:
 * everything they write goes through the layer, so modes, symlinks, hard links, fifos, times
 * and xattrs are stored the documented way. The layer runs as a child process (`pershome mount
 * --foreground`): this process then uses the mount with ordinary, blocking fs calls.
 */
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { StickError } from "./common.js";

export interface TempLayer {
  mnt: string;
  /** the daemon ended on its own (the stick went away, or it was killed) */
  dead(): boolean;
  /** what the daemon said on stderr (its log lines) */
  log(): string;
  /** Unmounts (the daemon writes everything out first) and removes the mount point. */
  stop(): Promise<void>;
}

const CLI = fileURLToPath(new URL("../cli/main.js", import.meta.url));

export async function mountLayerTemporarily(home: string, timeoutMs = 60_000): Promise<TempLayer> {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), "pershome-layer-"));
  const child = spawn(process.execPath, [CLI, "mount", home, mnt, "--foreground"], {
    stdio: ["ignore", "pipe", "pipe"],
    // the layer must not be stopped by the user's Ctrl-C on this terminal: this process
    // unmounts it cleanly instead
    detached: true,
  });
  let out = "";
  let err = "";
  let exited = false;
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (err = (err + d).slice(-20_000)));
  const exit = new Promise<void>((resolve) =>
    child.once("exit", () => {
      exited = true;
      resolve();
    }),
  );
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    const check = (): void => {
      if (out.includes("pershome: ready")) {
        clearTimeout(timer);
        resolve(true);
      }
    };
    child.stdout.on("data", check);
    void exit.then(() => {
      clearTimeout(timer);
      resolve(out.includes("pershome: ready"));
    });
  });
  if (!ready) {
    if (!exited) child.kill("SIGKILL");
    spawnSync("umount", ["-l", mnt], { stdio: "ignore" });
    fs.rmSync(mnt, { recursive: false, force: true });
    try {
      fs.rmdirSync(mnt);
    } catch {
      /* gone */
    }
    const why = err
      .split("\n")
      .filter((l) => l.trim())
      .map((l) => l.replace(/^pershome(\[\d+\])?( \w+)?: /, ""))
      .slice(-3)
      .join(" ");
    throw new StickError(
      "mount-failed",
      `Could not open the stick's home through pershome: ${why || "the mount did not start"}.`,
    );
  }
  let stopped = false;
  return {
    mnt,
    dead: () => exited,
    log: () => err,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (!exited) {
        const r = spawnSync("fusermount3", ["-u", mnt], { encoding: "utf8", timeout: 60_000 });
        if (r.status !== 0) spawnSync("umount", [mnt], { stdio: "ignore", timeout: 60_000 });
        const t = setTimeout(() => child.kill("SIGTERM"), 120_000);
        await exit;
        clearTimeout(t);
      }
      // a dead daemon leaves a dead mount behind
      spawnSync("umount", ["-l", mnt], { stdio: "ignore" });
      try {
        fs.rmdirSync(mnt);
      } catch {
        /* still busy */
      }
    },
  };
}
