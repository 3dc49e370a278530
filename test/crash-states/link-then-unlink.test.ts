// src/fs/ops/links.ts: a first hard link is answered at once and made on the stick only before
// the next request. git's link(tmp, final) + unlink(tmp) is then one rename written behind, with
// no fsync and nothing in .pershome/links; any other next request makes the link first, with
// every step of docs/format.md rule 5. Checked on the recorded stick calls.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, expect, it } from "vitest";
import { HomeDriver } from "../../lab/crash/driver.js";
import { NodeLower } from "../../src/fs/lower.js";
import { RecordingLower } from "../../src/fs/recording-lower.js";
import type { LowerEvent } from "../../src/fs/recording-lower.js";

const work: string[] = [];
afterEach(() => {
  for (const w of work.splice(0)) fs.rmSync(w, { recursive: true, force: true });
});

/** a home holding objects/tmp (written, closed, not synced) and a recording driver over it */
function home(): { dir: string; rec: RecordingLower; d: HomeDriver } {
  const w = fs.mkdtempSync(path.join(os.tmpdir(), "pershome-linkunlink-"));
  work.push(w);
  const dir = path.join(w, "pershome");
  fs.mkdirSync(dir);
  HomeDriver.prepare(dir);
  const root = Buffer.from(dir).toString("latin1");
  const first = new HomeDriver(new NodeLower(root));
  first.mkdir("objects");
  first.unmount();
  const rec = new RecordingLower(new NodeLower(root));
  const d = new HomeDriver(rec);
  d.writeFile("objects/tmp", Buffer.from("blob 5\0hello"), { mode: 0o444 });
  return { dir, rec, d };
}

/** a stick call without times (two homes number their objects alike; a record's length and place vary with its times) */
const shape = (e: LowerEvent): string =>
  e.op === "write" ? `write ${e.id}` : JSON.stringify(e, (k, v) => (k === "mtimeNs" ? undefined : v));

const renames = (ev: LowerEvent[]): string[] =>
  ev.flatMap((e) => (e.op === "rename" ? [`${e.from} -> ${e.to}`] : []));

it("link(tmp, final) then unlink(tmp) is one rename, written behind, with no fsync", () => {
  const { dir, rec, d } = home();
  const before = rec.events.length;
  d.link("objects/tmp", "objects/final");
  d.resolve("objects/tmp"); // a lookup of another name (the kernel's cache had expired)
  d.unlink("objects/tmp");
  expect(rec.events.slice(before), "nothing reaches the stick before a flush").toEqual([]);
  d.fsyncdir("objects");
  const ev = rec.events.slice(before);
  expect(renames(ev)).toEqual(["tmp -> final"]);
  // the same stick calls as `mv tmp final; sync -f objects`
  const twin = home();
  const start = twin.rec.events.length;
  twin.d.rename("objects/tmp", "objects/final");
  twin.d.fsyncdir("objects");
  expect(ev.map(shape)).toEqual(twin.rec.events.slice(start).map(shape));
  d.unmount();
  expect(fs.readFileSync(path.join(dir, "objects", "final"), "utf8")).toBe("blob 5\0hello");
  expect(fs.existsSync(path.join(dir, ".pershome", "links"))).toBe(false);
});

it("any other request after the link makes it first, the whole rule-5 conversion", () => {
  const { dir, rec, d } = home();
  const before = rec.events.length;
  d.link("objects/tmp", "objects/final");
  expect(rec.events.length).toBe(before);
  d.chmod("objects/final", 0o400); // a setattr: the link is made before it
  const ev = rec.events.slice(before);
  expect(renames(ev)).toHaveLength(1);
  expect(renames(ev)[0]).toMatch(/^tmp -> [0-9a-f]{24}$/); // the data into .pershome/links
  const chmodAt = ev.length;
  d.unlink("objects/tmp");
  d.unmount();
  expect(chmodAt).toBeGreaterThan(0);
  const v = new HomeDriver(new NodeLower(Buffer.from(dir).toString("latin1")));
  expect(v.view("objects/final")).toMatchObject({ kind: "f", perm: 0o400, size: 12 });
  expect(v.view("objects/tmp")).toBeNull();
});

it("a lookup of the new name makes the link, so that the name is found", () => {
  const { rec, d } = home();
  const before = rec.events.length;
  d.link("objects/tmp", "objects/final");
  const ino = d.resolve("objects/final").ino;
  expect(renames(rec.events.slice(before))[0]).toMatch(/^tmp -> [0-9a-f]{24}$/);
  expect(d.resolve("objects/tmp").ino).toBe(ino);
});

it("the 2-second flush makes a link nobody followed up", () => {
  const { rec, d } = home();
  const before = rec.events.length;
  d.link("objects/tmp", "objects/final");
  d.tick();
  expect(renames(rec.events.slice(before))[0]).toMatch(/^tmp -> [0-9a-f]{24}$/);
  expect(d.view("objects/final")).toMatchObject({ kind: "f", size: 12 });
  expect(d.view("objects/tmp")).toMatchObject({ kind: "f", size: 12 });
});
