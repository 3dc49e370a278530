// Assertions shared by the integration tests.

import { readFile, readdir, unlink, writeFile } from "node:fs/promises";
import { expect } from "vitest";
import type { LayerFixture } from "./fixture.js";
import { currentRecords, readDirLog, type MetaRecord, type ParsedLog } from "./metalog.js";
import { isReserved } from "./names.js";
import { rawNames } from "./fixture.js";

/** The daemon is alive and the mount answers: list, create, read back, remove. */
export async function expectServing(t: LayerFixture): Promise<void> {
  expect(t.layer.alive(), "daemon still running").toBe(true);
  await readdir(t.mnt);
  const probe = t.p(`.probe-${process.pid}-${Date.now()}`);
  await writeFile(probe, "still serving");
  expect(await readFile(probe, "utf8")).toBe("still serving");
  await unlink(probe);
}

/** The log the layer wrote for a lower directory, with the current record of each stored name. */
export async function layerLog(
  lowerDir: string,
): Promise<{ log: ParsedLog; byName: Map<string, MetaRecord> }> {
  const log = await readDirLog(lowerDir);
  if (!log) throw new Error(`the layer wrote no complete metadata log in ${lowerDir}`);
  return { log, byName: currentRecords(log) };
}

/** The layer's record of `name` in `lowerDir` (throws if there is none). */
export async function layerRecord(lowerDir: string, name: string): Promise<MetaRecord> {
  const { byName } = await layerLog(lowerDir);
  const r = byName.get(name);
  if (!r) throw new Error(`no record for ${name} in ${lowerDir}: have ${[...byName.keys()].join(", ")}`);
  return r;
}

/** A copy of `base` with `changes` applied (an undefined value removes the field). */
export function forge(base: MetaRecord, changes: Record<string, unknown>): MetaRecord {
  const r = structuredClone(base) as Record<string, unknown>;
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined) delete r[k];
    else r[k] = v;
  }
  return r as MetaRecord;
}

/** Stored user names (not the layer's own) in a lower directory, as UTF-8 text. */
export async function storedNames(lowerDir: string): Promise<string[]> {
  return (await rawNames(lowerDir)).map((b) => b.toString("utf8")).filter((n) => !isReserved(n));
}

/**
 * A name Windows can hold and open: no control characters, none of " * : < > ? \ |, no trailing
 * dot or space, not a DOS device name.
 */
export function windowsValid(name: string): boolean {
  if ([...name].some((c) => c.charCodeAt(0) < 0x20)) return false;
  if (/["*:<>?\\|/]/.test(name)) return false;
  if (/[. ]$/.test(name)) return false;
  if (/^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\..*)?$/i.test(name)) return false;
  return true;
}
