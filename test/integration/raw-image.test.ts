// After a clean unmount the stick is an ordinary, consistent exFAT volume a Windows user can use:
// fsck.exfat finds nothing, names are the readable encoded names, every file is a plain file,
// and the layer's own files are well-formed (every log line has a good CRC).

import { chmod, link, lstat, mkdir, readFile, readdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { storedNames, windowsValid } from "../support/checks.js";
import { useLayer } from "../support/fixture.js";
import { lowerKindsAmong } from "../support/lower.js";
import { LOG_A, LOG_B, parseLog } from "../support/metalog.js";
import { TWIN, pua, show } from "../support/names.js";
import { python } from "../support/run.js";
import { sys } from "../support/sys.js";

/** Every stored path under `dir` (files and directories), relative, the layer's own files apart. */
async function walk(dir: string, rel = ""): Promise<{ user: string[]; layer: string[] }> {
  const user: string[] = [];
  const layer: string[] = [];
  for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.name.startsWith(".pershome")) layer.push(r);
    else user.push(r);
    if (e.isDirectory() && !e.name.startsWith(".pershome")) {
      const sub = await walk(dir, r);
      user.push(...sub.user);
      layer.push(...sub.layer);
    }
  }
  return { user, layer };
}

const kinds = lowerKindsAmong("exfat");

describe.skipIf(kinds.length === 0).each(kinds.length ? kinds : (["exfat"] as const))(
  "the raw %s image after unmount",
  (kind) => {
    const t = useLayer(kind, "raw", { sizeMb: 256 });

    it("passes fsck.exfat -n and shows the names a Windows user can open, each a plain file or folder", async () => {
      await mkdir(t.p("Documents"));
      await writeFile(t.p("Documents", "report.odt"), "report");
      await writeFile(t.p("Documents", "Übersicht 2024.txt"), "overview");
      await writeFile(t.p("Documents", "what?.txt"), "q");
      await writeFile(t.p("Documents", "CON"), "device name");
      await writeFile(t.p("Documents", "Makefile"), "1");
      await writeFile(t.p("Documents", "makefile"), "2");
      await mkdir(t.p(".ssh"));
      await chmod(t.p(".ssh"), 0o700);
      await writeFile(t.p(".ssh", "id_ed25519"), "KEY");
      await chmod(t.p(".ssh", "id_ed25519"), 0o600);
      await symlink("Documents/report.odt", t.p("report-link"));
      await writeFile(t.p("shared"), "hard-linked data");
      await link(t.p("shared"), t.p("Documents", "shared-too"));
      await sys("mkfifo", t.p("pipe"), 0o600);
      await sys("setxattr", t.p("Documents", "report.odt"), "user.tag", "x");
      await t.unmount();
      await t.lower.detach();

      const fsck = await t.lower.fsck();
      expect(fsck.code, `fsck:\n${fsck.stdout}${fsck.stderr}`).toBe(0);

      await t.lower.attach();
      const { user, layer } = await walk(t.lower.dir);
      expect(user.sort().map(show)).toEqual(
        [
          ".ssh",
          ".ssh/id_ed25519",
          "Documents",
          "Documents/report.odt",
          "Documents/Übersicht 2024.txt",
          `Documents/what${pua("?")}.txt`,
          `Documents/CO${pua("N")}`,
          "Documents/Makefile",
          `Documents/makefile${TWIN}`,
          "Documents/shared-too",
          "report-link",
          "shared",
          "pipe",
        ]
          .sort()
          .map(show),
      );
      for (const p of user) {
        const name = p.split("/").pop()!;
        expect(windowsValid(name), `${show(p)} is a name Windows can open`).toBe(true);
        const s = await lstat(join(t.lower.dir, p));
        expect(s.isFile() || s.isDirectory(), `${show(p)} is a plain file or folder`).toBe(true);
      }
      expect(await readFile(t.low("Documents", "report.odt"), "utf8")).toBe("report");
      expect(await readFile(t.low("report-link"), "utf8"), "a symlink holds its target as text").toBe(
        "Documents/report.odt",
      );
      // The layer's own files: the marker, the link store, one log per directory with metadata.
      expect(layer).toContain(".pershome");
      expect(JSON.parse(await readFile(t.low(".pershome", "format"), "utf8"))).toMatchObject({
        format: "pershome",
        version: 1,
      });
      const logs = layer.filter((p) => p.endsWith(LOG_A) || p.endsWith(LOG_B));
      expect(logs.length).toBeGreaterThan(0);
      for (const p of logs) {
        const log = parseLog(await readFile(join(t.lower.dir, p), "utf8"), p);
        expect(log.badLines, `${p}: lines with a bad CRC or shape`).toBe(0);
        expect(log.complete, `${p} is complete`).toBe(true);
      }
      await t.mount();
    });

    it("stays consistent for fsck.exfat after heavy work: 1,500 files made, renamed, half removed", async () => {
      const d = await t.dir("heavy");
      const r = await python(
        `import os, sys
d = sys.argv[1]
for j in range(15):
    sub = os.path.join(d, "dir%02d" % j); os.mkdir(sub)
    for i in range(100):
        p = os.path.join(sub, "f%03d?" % i)
        with open(p, "wb") as f: f.write(os.urandom(i * 37))
        if i % 3 == 0: os.chmod(p, 0o600)
        if i % 5 == 0: os.rename(p, p + ".renamed")
    for i in range(0, 100, 2):
        for suffix in ("", ".renamed"):
            try: os.unlink(os.path.join(sub, "f%03d?" % i + suffix))
            except FileNotFoundError: pass`,
        [t.p(d)],
        { timeoutMs: 400_000 },
      );
      expect(r.code, r.stderr).toBe(0);
      await t.unmount();
      await t.lower.detach();
      const fsck = await t.lower.fsck();
      expect(fsck.code, `fsck:\n${fsck.stdout}${fsck.stderr}`).toBe(0);
      await t.lower.attach();
      expect((await storedNames(t.low(d, "dir07"))).length).toBe(50);
      await t.mount();
      expect((await readdir(t.p(d, "dir07"))).length).toBe(50);
    }, 600_000);
  },
);
