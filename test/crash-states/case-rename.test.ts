// docs/format.md, rule 8: a case-only rename passes through a stepping-stone name (the target
// plus a twin mark), whose record goes to the stick, durably, before the stick's first rename,
// and is dropped once the second rename is done. Checked on the recorded stick calls.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, expect, it } from "vitest";
import { HomeDriver } from "../../lab/crash/driver.js";
import { NodeLower } from "../../src/fs/lower.js";
import { RecordingLower } from "../../src/fs/recording-lower.js";
import type { LowerEvent } from "../../src/fs/recording-lower.js";
import { META_SLOTS } from "../../src/fs/dir-meta.js";
import { parseLog } from "../../src/format/records.js";
import { checkHome, problems } from "../../src/sticktools/check.js";

const STEP = "README\uf0fe";
let work = "";
afterEach(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** a home with `setup` done and cleanly unmounted, and a recording driver over it */
function home(setup: (d: HomeDriver) => void): { dir: string; rec: RecordingLower; d: HomeDriver } {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "pershome-caserename-"));
  const dir = path.join(work, "pershome");
  fs.mkdirSync(dir);
  HomeDriver.prepare(dir);
  const root = Buffer.from(dir).toString("latin1");
  const first = new HomeDriver(new NodeLower(root));
  setup(first);
  first.unmount();
  const rec = new RecordingLower(new NodeLower(root));
  return { dir, rec, d: new HomeDriver(rec) };
}

/** the home folder's log as the stick holds it now: latest record per stored name (UTF-8) */
function records(dir: string): Map<string, { mode?: number }> {
  const slot = META_SLOTS.map((s) => path.join(dir, s)).find((p) => fs.existsSync(p))!;
  const log = parseLog(fs.readFileSync(slot));
  return new Map(
    [...log.records].map(([n, r]) => [Buffer.from(n, "latin1").toString("utf8"), { mode: r.mode }]),
  );
}

const utf8 = (latin1: string): string => Buffer.from(latin1, "latin1").toString("utf8");

it("the stepping stone's record is on the stick before the stick's first rename, and goes after", () => {
  const { dir, rec, d } = home((h) =>
    h.writeFile("readme", Buffer.from("text\n"), { mode: 0o600, sync: true }),
  );
  d.rename("readme", "README");
  expect(rec.events.filter((e) => e.op === "rename")).toEqual([]); // written behind
  d.fsyncdir("");
  const ev = rec.events;
  const renames = ev
    .map((e, i) => [e, i] as const)
    .filter((x): x is [Extract<LowerEvent, { op: "rename" }>, number] => x[0].op === "rename");
  expect(renames.map(([e]) => `${utf8(e.from)} -> ${utf8(e.to)}`)).toEqual([
    `readme -> ${STEP}`,
    `${STEP} -> README`,
  ]);
  const firstRename = renames[0]![1];
  // the log write that names the stepping stone, then an fsync of the same log, both before it
  const logWrite = ev.findIndex((e) => e.op === "write" && e.data.toString("utf8").includes(STEP));
  expect(logWrite).toBeGreaterThanOrEqual(0);
  expect(logWrite).toBeLessThan(firstRename);
  const logId = (ev[logWrite] as Extract<LowerEvent, { op: "write" }>).id;
  const synced = ev.findIndex((e, i) => i > logWrite && e.op === "fsync" && e.id === logId);
  expect(synced).toBeGreaterThan(logWrite);
  expect(synced).toBeLessThan(firstRename);
  // that record is the file's, mode and all
  const line = (ev[logWrite] as Extract<LowerEvent, { op: "write" }>).data
    .toString("utf8")
    .split("\n")
    .find((l) => l.includes(STEP))!;
  expect(JSON.parse(line.slice(9))).toMatchObject({ n: STEP, k: "f", m: 0o600 });
  // once the renames are done, the stepping stone's record goes (a tombstone, written lazily)
  d.unmount();
  const after = records(dir);
  expect(after.has(STEP)).toBe(false);
  expect(after.get("README")?.mode).toBe(0o600);
  expect(problems(checkHome(dir)).map((f) => `${f.kind} ${f.path}`)).toEqual([]);
});

it("a case-only rename of a folder writes its stepping stone's record ahead as well", () => {
  const { dir, rec, d } = home((h) => h.mkdir("mail", 0o700));
  d.rename("mail", "MAIL");
  const ev = rec.events;
  const firstRename = ev.findIndex((e) => e.op === "rename");
  expect(firstRename).toBeGreaterThanOrEqual(0); // a folder's rename is not written behind
  const step = "MAIL\uf0fe";
  const logWrite = ev.findIndex((e) => e.op === "write" && e.data.toString("utf8").includes(step));
  expect(logWrite).toBeGreaterThanOrEqual(0);
  expect(logWrite).toBeLessThan(firstRename);
  d.unmount();
  const after = records(dir);
  expect(after.has(step)).toBe(false);
  expect(after.get("MAIL")?.mode).toBe(0o700);
  expect(problems(checkHome(dir)).map((f) => `${f.kind} ${f.path}`)).toEqual([]);
});

it("a stepping-stone name the stick already holds is not replaced", () => {
  // (a name the folder's index does not show: another system's file under the twin name)
  const { dir, d } = home((h) => h.writeFile("readme", Buffer.from("mine\n"), { mode: 0o600, sync: true }));
  d.rename("readme", "README");
  // made on the stick behind the layer's back after the rename was answered, before it is done
  fs.writeFileSync(path.join(dir, STEP), "theirs\n");
  d.fsyncdir("");
  d.unmount();
  expect(fs.readFileSync(path.join(dir, STEP), "utf8")).toBe("theirs\n");
  expect(fs.readFileSync(path.join(dir, "README"), "utf8")).toBe("mine\n");
  expect(fs.existsSync(path.join(dir, "readme"))).toBe(false);
});
