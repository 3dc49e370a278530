// check --repair writes a symlink's stored copy of its target again (docs/format.md, rule 3)
// after marking its record "being written", so that a pull during the repair still shows the
// link; a record left so by such a pull is repaired in the same run. On a plain directory,
// through the layer (the exFAT mount case is in check-repair.test.ts).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, expect, it } from "vitest";
import { HomeDriver } from "../../lab/crash/driver.js";
import { parseLog, recordLine } from "../../src/format/records.js";
import { NodeLower } from "../../src/fs/lower.js";
import { checkHome } from "../../src/sticktools/check.js";
import { repairHome } from "../../src/sticktools/repair.js";

let work = "";
afterEach(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** A fresh home written through the layer (no FUSE) with the given symlinks, unmounted. */
function homeWithLinks(links: Record<string, string>): { home: string; lower: () => NodeLower } {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "pershome-linkcopy-"));
  const home = path.join(work, "pershome");
  fs.mkdirSync(home);
  HomeDriver.prepare(home);
  const lower = (): NodeLower => new NodeLower(Buffer.from(home).toString("latin1"));
  const d = new HomeDriver(lower());
  for (const [name, target] of Object.entries(links)) d.symlink(target, name);
  d.unmount();
  return { home, lower };
}

/** What a pull can leave in a link's stored copy: other content, with the time it had. */
function pulled(home: string, name: string, data: Buffer): void {
  const stub = path.join(home, name);
  const st = fs.statSync(stub);
  fs.writeFileSync(stub, data);
  fs.utimesSync(stub, st.atime, st.mtime);
}

it.each([
  ["as a pull leaves it", false],
  ["with its record left open by a pull during an earlier repair", true],
])("a symlink's empty stored copy (%s) is written again, and a second check is clean", (_, open) => {
  const { home, lower } = homeWithLinks({ ln: "../some/target" });
  const stub = path.join(home, "ln");
  pulled(home, "ln", Buffer.alloc(0));
  if (open) {
    const log = path.join(home, ".pershome.meta.a");
    const rec = parseLog(fs.readFileSync(log)).records.get("ln")!;
    fs.appendFileSync(log, recordLine({ ...rec, writing: true }));
  }

  const first = checkHome(home);
  const kinds = first.findings.map((f) => f.kind).sort();
  expect(kinds).toEqual(open ? ["link-copy-missing", "record-open"] : ["link-copy-missing"]);
  const r = repairHome(first);
  expect(r.failed).toEqual([]);
  expect(r.fixed.map((x) => x.done)).toContain("wrote the copy of its target again");
  expect(fs.readFileSync(stub, "utf8")).toBe("../some/target");
  expect(checkHome(home).findings).toEqual([]);
  const v = new HomeDriver(lower()).view("ln");
  expect(v).toMatchObject({ kind: "l", target: "../some/target" });
});

// A pull on FAT can leave an entry pointing at a cluster that was free and may since hold
// another file's data: a copy with other bytes is never written into, only noted.
it("a symlink's copy holding other bytes is noted, never written into; the link still reads", () => {
  const { home, lower } = homeWithLinks({ ln: "../some/target", half: "../half/target" });
  const other = Buffer.from("someone else's"); // as long as the target
  pulled(home, "ln", other);
  pulled(home, "half", Buffer.concat([Buffer.from("../hal"), Buffer.alloc(8)])); // a torn write: ours
  const report = checkHome(home);
  expect(report.findings.map((f) => `${f.kind} ${f.path}`).sort()).toEqual([
    "link-copy-missing /half",
    "link-copy-other /ln",
  ]);
  const r = repairHome(report);
  expect(r.failed).toEqual([]);
  expect(fs.readFileSync(path.join(home, "ln")).equals(other)).toBe(true);
  expect(fs.readFileSync(path.join(home, "half"), "utf8")).toBe("../half/target");
  const v = new HomeDriver(lower());
  expect(v.view("ln")).toMatchObject({ kind: "l", target: "../some/target" });
  expect(v.view("half")).toMatchObject({ kind: "l", target: "../half/target" });
});
