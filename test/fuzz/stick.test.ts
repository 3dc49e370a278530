// Fuzzing whole sticks: fast-check generates a stick folder (hostile names, metadata logs with
// forged, nonsense and damaged records, marker files, `.pershome/state`, hard-link data, and on
// a plain directory planted symlinks, fifos and device nodes) and feeds it
//  (a) to the layer in-process (lab/crash/driver.ts: the operations the kernel's requests
//      reach), many runs: list, stat and read everything, unmount, do it again;
//  (b) to a live `pershome mount`, fewer runs: a child process lists, stats and reads every
//      entry (never following a link) under a timeout.
// Every time: no crash, no hang, no fewer entries than the stick holds (a file the layer cannot
// describe is shown with defaults, never hidden), no device, no setuid honoured (nosuid,nodev),
// nothing read from outside the stick folder. docs/robustness.md, section 3.
import fc from "fast-check";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it, onTestFinished } from "vitest";
import { HomeDriver } from "../../lab/crash/driver.js";
import { NodeLower } from "../../src/fs/lower.js";
import { MountError } from "../../src/fs/mount.js";
import { MountFailed, mountLayer } from "../support/mount.js";
import { mountAt } from "../support/mountinfo.js";
import { python } from "../support/run.js";
import { replay, runs, stick, storedCounts, writeStick, type StickSpec } from "./gen.js";

/** timeouts grow with PERSHOME_FUZZ_RUNS */
const LONG = Math.max(1, Number(process.env.PERSHOME_FUZZ_RUNS ?? 0) / 50);
const SECRET = "SECRET OUTSIDE THE STICK FOLDER";
const stats = { inProcess: 0, live: 0, refused: 0, crashes: 0, hangs: 0, entries: 0 };

function scratch(): { work: string; home: string; secret: string } {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "pershome-fuzz-"));
  fs.chmodSync(work, 0o755);
  const home = path.join(work, "stick", "pershome");
  fs.mkdirSync(home, { recursive: true });
  fs.mkdirSync(path.join(work, "outside"));
  const secret = path.join(work, "outside", "secret");
  fs.writeFileSync(secret, SECRET);
  return { work, home, secret };
}

/** An entry planted as neither file nor folder refuses to open: EACCES, or ELOOP for a link. */
const refusedOpen = (msg: string): boolean => /EACCES|ELOOP|Errno 13|Errno 40|not a regular file/.test(msg);

/**
 * Sticks a mount must refuse, with a message: a marker newer than this pershome, or a
 * `.pershome` that is not a folder (the layer's area taken by a file or a link).
 */
function refusal(s: StickSpec, home: string): RegExp | undefined {
  const area = fs.lstatSync(path.join(home, ".pershome"), { throwIfNoEntry: false });
  if (area && !area.isDirectory()) return /not a folder/;
  if (typeof s.marker === "string") return undefined;
  try {
    const o = JSON.parse(s.marker.toString("utf8")) as { format?: unknown; version?: unknown };
    if (
      o.format === "pershome" &&
      typeof o.version === "number" &&
      Number.isInteger(o.version) &&
      o.version > 1
    )
      return /update pershome/i;
  } catch {
    /* garbage: mounts as format 1 */
  }
  return undefined;
}

describe("fuzzing whole sticks", () => {
  afterAll(() => {
    console.log(
      `stick fuzz: ${stats.inProcess} in-process sticks, ${stats.live} live mounts, ${stats.entries} entries checked, ${stats.refused} refused with a message (newer format, .pershome not a folder), ${stats.crashes} crashes, ${stats.hangs} hangs`,
    );
  });

  it(
    "(a) in-process: every generated stick is listed in full, read, unmounted and listed again",
    async () => {
      // the layer's log lines (one per damaged log, name shown otherwise…) are counted, not printed
      const write = process.stderr.write.bind(process.stderr);
      let logLines = 0;
      process.stderr.write = ((chunk: string | Uint8Array) => {
        logLines += String(chunk).split("\n").length - 1;
        return true;
      }) as typeof process.stderr.write;
      onTestFinished(() => {
        process.stderr.write = write;
        console.log(`in-process stick fuzz: the layer wrote ${logLines} log lines`);
      });
      // async only to let the worker breathe between sticks (the layer's calls are synchronous)
      await fc.assert(
        fc.asyncProperty(stick(true), async (s) => {
          await new Promise((r) => setImmediate(r));
          const { work, home, secret } = scratch();
          try {
            writeStick(home, s);
            const want = storedCounts(home);
            try {
              HomeDriver.prepare(home);
            } catch (e) {
              const why = refusal(s, home);
              if (e instanceof MountError && why?.test(e.message)) {
                stats.refused++;
                return;
              }
              stats.crashes++;
              throw e;
            }
            for (let pass = 0; pass < 2; pass++) {
              const d = new HomeDriver(new NodeLower(home));
              const { view, problems } = d.walk();
              expect(problems.filter((p) => !refusedOpen(p))).toEqual([]);
              expect(problems.length, problems.join("\n")).toBeLessThanOrEqual(want.special);
              if (view.size + problems.length !== want.entries)
                console.log(
                  `listed: ${[...view.keys()].map((k) => JSON.stringify(k)).join(" ")}\nstored under ${home}`,
                );
              expect(view.size + problems.length, "entries listed").toBe(want.entries);
              for (const [p, v] of view) {
                expect(v.data?.toString() ?? "", p).not.toContain(SECRET);
                expect(["f", "d", "l", "p", "s"]).toContain(v.kind);
              }
              stats.entries += view.size;
              d.unmount();
            }
            expect(fs.readFileSync(secret, "utf8")).toBe(SECRET);
            stats.inProcess++;
          } finally {
            if (!process.env.PERSHOME_FUZZ_KEEP) fs.rmSync(work, { recursive: true, force: true });
          }
        }),
        { numRuns: runs(60), endOnFailure: true, ...replay },
      );
    },
    LONG * 300_000,
  );

  const WALK = `import json, os, stat, sys
root, secret = sys.argv[1], sys.argv[2].encode()
out = {"count": 0, "devices": [], "secret": [], "errors": []}
def visit(d):
    for e in os.scandir(d):
        out["count"] += 1
        p = e.path
        try:
            st = os.lstat(p)
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                out["devices"].append(repr(p))
            if stat.S_ISREG(st.st_mode):
                fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                try:
                    data = os.read(fd, 1 << 20)
                finally:
                    os.close(fd)
                if secret in data:
                    out["secret"].append(repr(p))
            elif stat.S_ISLNK(st.st_mode):
                os.readlink(p)
            elif stat.S_ISDIR(st.st_mode):
                visit(p)
        except OSError as x:
            out["errors"].append("%r: %s" % (p, x))
visit(os.fsencode(root))
print(json.dumps(out))`;

  it(
    "(b) live mount: listing, stat and read of every entry, no crash, hang, hidden file, device or escape",
    async () => {
      await fc.assert(
        fc.asyncProperty(stick(true), async (s) => {
          const { work, home, secret } = scratch();
          const mnt = path.join(work, "mnt");
          fs.mkdirSync(mnt);
          try {
            writeStick(home, s);
            const want = storedCounts(home);
            let layer;
            try {
              layer = await mountLayer(home, mnt, { readyTimeoutMs: 30_000 });
            } catch (e) {
              const why = refusal(s, home);
              if (e instanceof MountFailed && why?.test(e.stderr)) {
                stats.refused++;
                return;
              }
              stats.crashes++;
              throw e;
            }
            try {
              const m = mountAt(mnt);
              expect(m?.mountOptions, "mount options").toContain("nosuid");
              expect(m?.mountOptions).toContain("nodev");
              const r = await python(WALK, [mnt, SECRET], { timeoutMs: 60_000 });
              if (r.code !== 0 && !r.stdout) stats.hangs++;
              expect(r.code, r.stderr).toBe(0);
              const o = JSON.parse(r.stdout) as {
                count: number;
                devices: string[];
                secret: string[];
                errors: string[];
              };
              expect(o.errors.filter((p) => !refusedOpen(p))).toEqual([]);
              expect(o.errors.length, o.errors.join("\n")).toBeLessThanOrEqual(want.special);
              expect(o.devices).toEqual([]);
              expect(o.secret).toEqual([]);
              expect(o.count, "entries listed").toBe(want.entries);
              stats.entries += o.count;
              expect(layer.alive(), "the daemon is alive").toBe(true);
            } finally {
              const st = await layer.stop();
              if (st.code !== 0 || st.forced) stats.crashes++;
              expect(st.forced, `daemon had to be killed:\n${layer.stderr().slice(-2000)}`).toBe(false);
              expect(st.code, layer.stderr().slice(-2000)).toBe(0);
            }
            expect(fs.readFileSync(secret, "utf8")).toBe(SECRET);
            stats.live++;
          } finally {
            fs.rmSync(work, { recursive: true, force: true });
          }
        }),
        // each run is a mount: report the first failing stick as generated, without shrinking
        { numRuns: runs(12), endOnFailure: true, ...replay },
      );
    },
    LONG * 600_000,
  );
});
