// The stick tools on FAT32 under the real kernel vfat driver (QEMU micro-VM, /dev/sda):
// `init` on the device, files made through the layer, a clean `check`; then damage made on the
// host with mtools as Windows could (a hard link's data deleted, both names of another deleted,
// a metadata log overwritten with garbage, a file with a record renamed); then, in a second
// guest, `check` finds it all, `--repair` fixes it, a second check is clean, and the layer
// shows the result. Two VM boots in all.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runInVm } from "../../lab/microvm/index.js";
import { fsckFat, makeFat32Stick, mcopyTo, mdirNames, mtype } from "../../lab/sticks/index.js";
import { run } from "../support/run.js";
import { CLI } from "./helpers.js";

const dir = mkdtempSync(join(tmpdir(), "sticktools-fat32-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Splits guest output into "@@name" sections. */
function sections(out: string): Map<string, string> {
  const m = new Map<string, string>();
  let cur = "";
  for (const line of out.split("\n")) {
    const h = /^@@(\S+)$/.exec(line.trim());
    if (h) {
      cur = h[1]!;
      m.set(cur, "");
    } else if (cur) m.set(cur, m.get(cur)! + line + "\n");
  }
  return m;
}

const exitOf = (s: Map<string, string>, name: string): string | undefined =>
  s.get(name)?.trim().split("\n")[0];

const MOUNT_STICK =
  "mkdir -p /media/stick /home/s && mount -t vfat -o utf8,shortname=mixed,flush,nosuid,nodev /dev/sda /media/stick";

describe("stick tools on FAT32 in the micro-VM", () => {
  it(
    "init on the device and a clean check; after mtools damage, check finds it, --repair fixes it, a second check is clean",
    { timeout: 900_000 },
    async () => {
      const img = await makeFat32Stick(join(dir, "stick.img"), 64, "FATSTICK");
      const C = `node ${CLI}`;
      const first = await runInVm({
        sticks: [{ image: img }],
        timeoutMs: 400_000,
        command: [
          `echo @@init; ${C} init /dev/sda --json; r=$?; echo @@init-exit; echo $r`,
          "set -e",
          MOUNT_STICK,
          `${C} mount /media/stick/pershome /home/s`,
          "cd /home/s",
          "mkdir docs && printf 'the report\\n' > docs/report.txt && chmod 640 docs/report.txt",
          "printf '#!/bin/sh\\necho tool\\n' > tool.sh && chmod 755 tool.sh",
          "printf 'shared data\\n' > a && ln a b",
          "printf 'keep me\\n' > k1 && ln k1 k2 && chmod 600 k1",
          "cd / && " + `${C} umount /home/s`,
          "set +e",
          `echo @@check; ${C} check /media/stick --json; r=$?; echo @@check-exit; echo $r`,
          "umount /media/stick",
          "echo @@done",
        ].join("\n"),
      });
      expect(first.exitCode, first.output).toBe(0);
      const s1 = sections(first.output);
      expect(exitOf(s1, "init-exit"), first.output).toBe("0");
      expect(JSON.parse(s1.get("init")!)).toMatchObject({
        ok: true,
        filesystem: "FAT32 (vfat)",
        label: "FATSTICK",
        device: "/dev/sda",
      });
      expect(exitOf(s1, "check-exit"), first.output).toBe("0");
      expect(JSON.parse(s1.get("check")!)).toMatchObject({ ok: true, clean: true });
      expect(await fsckFat(img)).toMatchObject({ clean: true });

      // --- damage, the way another computer could do it (mtools writes the FAT image directly)
      const idOf = async (p: string): Promise<string> =>
        /links\/([0-9a-f]+)/.exec((await mtype(img, p)).toString("latin1"))![1]!;
      const dataOfA = await idOf("/pershome/a");
      const dataOfK = await idOf("/pershome/k1");
      const m = async (tool: string, ...args: string[]): Promise<void> => {
        const r = await run(tool, ["-i", img, ...args], {
          env: { MTOOLS_SKIP_CHECK: "1", LC_ALL: "C.UTF-8" },
        });
        expect(r.code, r.stderr).toBe(0);
      };
      await m("mdel", `::/pershome/.pershome/links/${dataOfA}`); // a hard link's data deleted
      await m("mdel", "::/pershome/k1");
      await m("mdel", "::/pershome/k2"); // both names of another: its data is left without a name
      const garbage = join(dir, "garbage");
      writeFileSync(garbage, "\x00\x13garbage that is no log at all\n\xff\xfe");
      await mcopyTo(img, garbage, "/pershome/docs/.pershome.meta.a"); // a log overwritten with garbage
      await m("mren", "::/pershome/tool.sh", "::/pershome/tool-renamed.sh"); // a file with a record renamed
      expect(await mdirNames(img, "/pershome")).toEqual(
        expect.arrayContaining(["tool-renamed.sh", "a", "b", "docs"]),
      );

      const second = await runInVm({
        sticks: [{ image: img }],
        timeoutMs: 400_000,
        command: [
          "set -e",
          MOUNT_STICK,
          "set +e",
          `echo @@check1; ${C} check /media/stick --json; r=$?; echo @@check1-exit; echo $r`,
          `echo @@repair; ${C} check --repair /media/stick; r=$?; echo @@repair-exit; echo $r`,
          `echo @@check2; ${C} check /media/stick --json; r=$?; echo @@check2-exit; echo $r`,
          "set -e",
          `${C} mount /media/stick/pershome /home/s`,
          "echo @@stat; stat -c '%n %a %h %s' /home/s/tool-renamed.sh /home/s/k1 /home/s/docs/report.txt /home/s/a 2>&1 || true",
          "echo @@lost; ls /home/s/lost+found; cat /home/s/lost+found/LISTING.txt",
          "echo @@lostdata; cat /home/s/lost+found/hard-linked-file-*",
          "echo @@note; cat /home/s/a",
          `cd / && ${C} umount /home/s`,
          "umount /media/stick",
          "echo @@done",
        ].join("\n"),
      });
      expect(second.exitCode, second.output).toBe(0);
      const s2 = sections(second.output);
      expect(exitOf(s2, "check1-exit"), second.output).toBe("2");
      const found = (JSON.parse(s2.get("check1")!) as { findings: { kind: string; path: string }[] })
        .findings;
      const has = (kind: string, path: string): boolean =>
        found.some((f) => f.kind === kind && f.path.includes(path));
      expect(has("link-data-missing", "/a"), JSON.stringify(found, null, 1)).toBe(true);
      expect(has("link-data-missing", "/b")).toBe(true);
      expect(has("link-orphan", dataOfK)).toBe(true);
      expect(has("log-damaged", "/docs")).toBe(true);
      expect(has("record-renamed", "/tool.sh")).toBe(true);
      expect(has("record-vanished", "/k1")).toBe(true);

      expect(exitOf(s2, "repair-exit"), second.output).toBe("0");
      expect(s2.get("repair")).toMatch(/The stick is in order now/);
      expect(exitOf(s2, "check2-exit"), second.output).toBe("0");
      expect(JSON.parse(s2.get("check2")!)).toMatchObject({ clean: true });

      const stat = s2.get("stat")!;
      expect(stat).toContain("/home/s/tool-renamed.sh 755 1"); // the renamed file got its mode back
      expect(stat).toContain("/home/s/docs/report.txt 644 1"); // its log was garbage: defaults, data kept
      expect(stat).toMatch(/\/home\/s\/a 644 1 \d+/); // a link whose data is gone: the note, as a plain file
      expect(stat).toMatch(/k1.*No such file/);
      expect(s2.get("lost")).toContain(`hard-linked-file-${dataOfK}`);
      expect(s2.get("lost")).toContain("damaged-metadata-docs-a.txt");
      expect(s2.get("lost")).toMatch(/LISTING\.txt/);
      expect(s2.get("lostdata")).toContain("keep me");
      expect(s2.get("note")).toMatch(/several names \(hard links\)/);
      expect(await fsckFat(img)).toMatchObject({ clean: true });
    },
  );
});
