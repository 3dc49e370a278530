// A stick pulled in the middle of work: kill -9 the layer and the stick's driver (exfat-fuse)
// at once while a workload writes and fsyncs; detach; check the image; mount again. Every file
// whose fsync had returned must be there with its content and its mode (docs/format.md
// "Crash safety", rule 4: fsync means fsync).

import { createHash } from "node:crypto";
import { readFile, readdir, stat } from "node:fs/promises";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { expectServing } from "../support/checks.js";
import { useLayer } from "../support/fixture.js";
import { lowerKinds } from "../support/lower.js";
import { killSync } from "../support/cleanup.js";
import { PYTHON, run, waitFor } from "../support/run.js";
import { perms } from "../support/sys.js";

/**
 * Writes files f<i> (random size and content, mode by i % 4), fsyncs each, and prints
 * "synced <name> <sha256> <mode>" once fsync returned. Every third step also saves doc<k>
 * editor-style (temp file, fsync, rename over, fsync the directory): "attempt" before the
 * rename, "saved" once the directory fsync returned. Unsynced scratch writes go in between.
 */
const WORKLOAD = `import hashlib, os, random, sys
d = sys.argv[1]
MODES = [0o600, 0o640, 0o755, 0o644]
rnd = random.Random(1234)
def out(*a):
    sys.stdout.write(" ".join(str(x) for x in a) + "\\n"); sys.stdout.flush()
i = 0
while True:
    name = "f%04d" % i
    data = os.urandom(rnd.randint(1, 200_000))
    fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data)
    os.fchmod(fd, MODES[i % 4])
    os.fsync(fd)
    os.close(fd)
    out("synced", name, hashlib.sha256(data).hexdigest(), oct(MODES[i % 4]))
    with open(os.path.join(d, "scratch%d" % (i % 7)), "wb") as f:
        f.write(os.urandom(50_000))
    if i % 3 == 0:
        k = i % 5
        doc = os.path.join(d, "doc%d" % k)
        tmp = doc + ".tmp"
        body = ("doc %d version %d " % (k, i)).encode() * rnd.randint(1, 2000)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, body); os.fsync(fd); os.close(fd)
        out("attempt", "doc%d" % k, hashlib.sha256(body).hexdigest())
        os.rename(tmp, doc)
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY); os.fsync(dfd); os.close(dfd)
        out("saved", "doc%d" % k, hashlib.sha256(body).hexdigest())
    i += 1
`;

describe.each(lowerKinds())("a crash in the middle of work (%s)", (kind) => {
  const t = useLayer(kind, "crash", { sizeMb: 1024 });

  it("keeps every file whose fsync returned, with its content and mode, after kill -9 of the layer and the stick driver", async () => {
    const d = await t.dir("work");
    // its own process group, so that the pull kills it with everything it runs
    const work = execa(PYTHON, ["-c", WORKLOAD, t.p(d)], {
      reject: false,
      timeout: 300_000,
      buffer: false,
      detached: true,
    });
    let out = "";
    work.stdout?.on("data", (b: Buffer) => (out += b.toString()));
    let err = "";
    work.stderr?.on("data", (b: Buffer) => (err += b.toString()));
    const enough = await waitFor(() => (out.match(/^synced /gm) ?? []).length >= 60, 180_000, 20);
    expect(enough, `workload made too little progress: ${out.slice(-500)} ${err}`).toBeTruthy();

    // The pull: the stick's driver and the layer die at the same instant, and the workload
    // with them, first: once the dead mounts are detached (umount -l) its paths would lead to
    // the bare mountpoint beneath, and what it wrote and "synced" there is no promise
    // (docs/robustness.md, section 4).
    const layer = t.layer;
    const driver = t.lower.driverPid();
    if (t.lower.kind === "exfat") expect(driver, "exfat-fuse pid").toBeGreaterThan(0);
    expect(work.pid, "workload pid").toBeGreaterThan(0);
    killSync(-work.pid!, "SIGKILL");
    killSync(driver, "SIGKILL");
    killSync(layer.pid, "SIGKILL");
    await layer.kill9();
    await t.lower.crash();
    await work;
    // the mountpoint is bare now: nothing may have been written beneath the dead mount
    expect(await readdir(t.mnt), "written into the bare mountpoint").toEqual([]);
    // Every line the workload printed: an fsync that returned did so before the layer died (a dead
    // layer answers nothing), even if its line reached us after the kill.
    const lines = out.split("\n");

    // The stick as a user would find it: checked, repaired if it must be, plugged again.
    const check = await t.lower.fsck();
    if (check.code !== 0) {
      console.warn(
        `fsck after the pull found problems (exit ${check.code}); repairing:\n${check.stdout}${check.stderr}`,
      );
      if (t.lower.image) {
        const repair = await run("fsck.exfat", ["-y", t.lower.image]);
        expect([0, 1], `fsck.exfat -y:\n${repair.stdout}${repair.stderr}`).toContain(repair.code);
      }
    }
    await t.lower.attach();
    await t.mount();
    await expectServing(t);

    const synced = lines
      .filter((l) => l.startsWith("synced "))
      .map((l) => l.split(" ") as [string, string, string, string]);
    expect(synced.length).toBeGreaterThanOrEqual(60);
    const problems: string[] = [];
    for (const [, name, sha, mode] of synced) {
      try {
        const data = await readFile(t.p(d, name));
        if (createHash("sha256").update(data).digest("hex") !== sha)
          problems.push(`${name}: content differs (${data.length} bytes)`);
        const m = perms((await stat(t.p(d, name))).mode);
        if (m !== perms(parseInt(mode.replace(/^0o/, ""), 8)))
          problems.push(`${name}: mode ${m}, want ${mode}`);
      } catch (e) {
        problems.push(`${name}: ${(e as Error).message}`);
      }
    }
    // doc<k>: the last confirmed save, or a later attempted one.
    const docs = new Map<string, { confirmed: string; later: Set<string> }>();
    for (const l of lines) {
      const [what, doc, sha] = l.split(" ");
      if (!doc || !sha) continue;
      if (what === "saved") docs.set(doc, { confirmed: sha, later: new Set() });
      else if (what === "attempt") docs.get(doc)?.later.add(sha);
    }
    for (const [doc, { confirmed, later }] of docs) {
      try {
        const sha = createHash("sha256")
          .update(await readFile(t.p(d, doc)))
          .digest("hex");
        if (sha !== confirmed && !later.has(sha))
          problems.push(`${doc}: neither the confirmed save nor a later one`);
        const m = perms((await stat(t.p(d, doc))).mode);
        if (m !== "0600") problems.push(`${doc}: mode ${m}, want 0600`);
      } catch (e) {
        problems.push(`${doc}: ${(e as Error).message}`);
      }
    }
    expect(problems, `${synced.length} files and ${docs.size} documents were confirmed durable`).toEqual([]);
    // Everything listed can be read (no entry points at lost data).
    for (const n of await readdir(t.p(d)))
      await readFile(t.p(d, n)).catch((e: NodeJS.ErrnoException) => problems.push(`${n}: ${e.code}`));
    expect(problems).toEqual([]);
  }, 600_000);
});
