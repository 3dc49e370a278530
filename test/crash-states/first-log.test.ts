// src/fs/dir-meta.ts compact(): a folder's first log replaces nothing, so the 2-second flush
// writes it without an fsync (git and tar make hundreds of new folders); the next fsync that
// needs it makes the log durable, and its entry in the folder too. Checked on the recorded
// stick calls; test/crash-states/crash-states.test.ts checks the promises around it.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, expect, it } from "vitest";
import { HomeDriver } from "../../lab/crash/driver.js";
import { NodeLower } from "../../src/fs/lower.js";
import { RecordingLower } from "../../src/fs/recording-lower.js";
import type { LowerEvent } from "../../src/fs/recording-lower.js";

let work = "";
afterEach(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

function home(): { rec: RecordingLower; d: HomeDriver } {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "pershome-firstlog-"));
  const dir = path.join(work, "pershome");
  fs.mkdirSync(dir);
  HomeDriver.prepare(dir);
  const rec = new RecordingLower(new NodeLower(Buffer.from(dir).toString("latin1")));
  return { rec, d: new HomeDriver(rec) };
}

const syncs = (ev: LowerEvent[]): LowerEvent[] => ev.filter((e) => e.op === "fsync" || e.op === "fsyncDir");

it("the 2-second flush writes a new folder's first log without an fsync; a file's fsync then syncs it and the folder", () => {
  const { rec, d } = home();
  d.mkdir("new");
  d.fsyncdir("");
  d.writeFile("new/a", Buffer.from("x"), { mode: 0o600 });
  d.writeFile("new/b", Buffer.from("y"), { mode: 0o640 });
  const start = rec.events.length;
  d.tick();
  const flushed = rec.events.slice(start);
  const dirOfA = rec.events.find((e) => e.op === "create" && e.name === "a") as Extract<
    LowerEvent,
    { op: "create" }
  >;
  const log = flushed.find(
    (e) => e.op === "create" && e.dir === dirOfA.dir && e.name.startsWith(".pershome.meta."),
  );
  expect(log, "the first log is written").toBeDefined();
  expect(syncs(flushed)).toEqual([]);
  const logId = (log as Extract<LowerEvent, { op: "create" }>).id;
  const dirId = (log as Extract<LowerEvent, { op: "create" }>).dir;

  const before = rec.events.length;
  d.chmod("new/a", 0o400);
  d.syncFile("new/a");
  const ev = rec.events.slice(before);
  const logSync = ev.findIndex((e) => e.op === "fsync" && e.id === logId);
  expect(logSync).toBeGreaterThanOrEqual(0);
  expect(ev.slice(logSync).some((e) => e.op === "fsyncDir" && e.dir === dirId)).toBe(true);
  d.unmount();
});

it("a folder whose log is on the stick still compacts durably", () => {
  const { rec, d } = home();
  d.mkdir("old");
  d.writeFile("old/a", Buffer.from("x"), { mode: 0o600, sync: true });
  // enough records to compact the log (2 x records + 256 appended)
  for (let i = 0; i < 300; i++) {
    d.chmod("old/a", i % 2 ? 0o600 : 0o640);
    d.tick();
  }
  const creates = rec.events.filter((e) => e.op === "create" && e.name.startsWith(".pershome.meta."));
  expect(creates.length).toBeGreaterThanOrEqual(2); // the first log and a compacted one
  const compacted = creates[creates.length - 1] as Extract<LowerEvent, { op: "create" }>;
  const at = rec.events.indexOf(compacted);
  expect(rec.events.slice(at).some((e) => e.op === "fsync" && e.id === compacted.id)).toBe(true);
});
