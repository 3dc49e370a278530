// The README's "see it work" command must keep working: run the demo as a newcomer would
// (after the build) and hold it to what it says it shows.
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "../..");

describe("npm run demo (README: see it work)", () => {
  it(
    "Joseph's home goes from the college to the library on a FAT32 stick, every item back",
    { timeout: 600_000 },
    async () => {
      // async: a synchronous spawn would stall vitest's worker for the demo's two minutes
      const r = await execa(process.execPath, [join(root, "dist/lab/demo/joseph.js")], {
        cwd: root,
        reject: false,
        all: true,
        timeout: 590_000,
      });
      const out = r.all ?? "";
      expect(r.exitCode, out).toBe(0);
      expect(out).not.toContain("WRONG");
      expect(out.match(/^ {2}ok {4}/gm)?.length, out).toBe(7);
      expect(out).toContain("fsck.fat -n: clean");
      expect(out).toContain("came back whole");
    },
  );
});
