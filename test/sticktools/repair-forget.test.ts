// A record `check --repair` forgets must stay forgotten: a reader falls back to an earlier
// record of a name that matches the file (docs/format.md, rule 6), so a tombstone alone let
// a hard link's record whose data was deleted elsewhere come back (found by fat32-vm.test.ts
// once check read earlier records as the layer does). On a plain directory, through the layer.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, expect, it } from "vitest";
import { HomeDriver } from "../../lab/crash/driver.js";
import { parseLog, snapshotText } from "../../src/format/records.js";
import { NodeLower } from "../../src/fs/lower.js";
import { checkHome, problems } from "../../src/sticktools/check.js";
import { repairHome } from "../../src/sticktools/repair.js";

let work = "";
afterEach(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** Rewrites the home's log as one snapshot, as the layer's compaction does (no earlier records). */
function compactHomeLog(home: string): void {
  const slots = [".pershome.meta.a", ".pershome.meta.b"].map((n) => path.join(home, n));
  const i = fs.existsSync(slots[0]!) ? 0 : 1;
  const log = parseLog(fs.readFileSync(slots[i]!));
  fs.writeFileSync(slots[1 - i]!, snapshotText(log.gen + 1, log.records.values()));
  fs.rmSync(slots[i]!);
}

it.each([
  ["as the layer left it", false],
  ["compacted", true],
])("records --repair forgets do not come back from the log's earlier records (log %s)", (_, compact) => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "pershome-forget-"));
  const home = path.join(work, "pershome");
  fs.mkdirSync(home);
  HomeDriver.prepare(home);
  const lower = (): NodeLower => new NodeLower(Buffer.from(home).toString("latin1"));
  const d = new HomeDriver(lower());
  d.writeFile("a", Buffer.from("shared data\n"), { sync: true });
  d.link("a", "b");
  d.writeFile("k1", Buffer.from("keep me\n"), { sync: true });
  d.link("k1", "k2");
  d.chmod("k1", 0o600);
  d.unmount();
  // elsewhere: one hard link's data deleted, both names of another
  const idOf = (p: string): string =>
    /links\/([0-9a-f]+)/.exec(fs.readFileSync(path.join(home, p), "latin1"))![1]!;
  const [dataOfA, dataOfK] = [idOf("a"), idOf("k1")];
  fs.rmSync(path.join(home, ".pershome/links", dataOfA));
  fs.rmSync(path.join(home, "k1"));
  fs.rmSync(path.join(home, "k2"));
  if (compact) compactHomeLog(home);

  const first = checkHome(home);
  const kinds = problems(first).map((f) => `${f.kind} ${f.path}`);
  expect(kinds).toEqual(
    expect.arrayContaining([
      "link-data-missing /a",
      "link-data-missing /b",
      "record-vanished /k1",
      "record-vanished /k2",
      `link-orphan /.pershome/links/${dataOfK}`,
    ]),
  );
  expect(repairHome(first).failed).toEqual([]);
  expect(problems(checkHome(home)).map((f) => `${f.kind} ${f.path}`)).toEqual([]);
  // the layer agrees: a is the small note it is, k's data is in lost+found
  const after = new HomeDriver(lower());
  expect(after.view("a")?.data?.toString()).toMatch(/several names \(hard links\)/);
  expect(after.view("k1")).toBeNull();
  expect(after.view(`lost+found/hard-linked-file-${dataOfK}`)?.data?.toString()).toBe("keep me\n");
});
