/**
 * Transport cost of the addon, measured on the memfs fixture. Skipped unless
 * PERSHOME_BENCH=1 (timings on a shared machine are not pass/fail material):
 *
 *   PERSHOME_BENCH=1 npx vitest run test/native/bench.test.ts
 *
 * Prints daemon CPU per request for 50k stat calls (attribute/entry timeouts 0, so every
 * stat reaches the daemon), answered with the object replies and with the flat ones of
 * src/native/index.ts (`npm run build` first), and write throughput with 1 MiB writes.
 */
import path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { cleanupMemfs, ensureAddon, run, startMemfs } from "./helpers.js";

const N = 50_000;

beforeAll(() => ensureAddon(), 300_000);
afterEach(cleanupMemfs);

describe.skipIf(process.env["PERSHOME_BENCH"] !== "1")("addon transport cost", () => {
  it(`daemon CPU per request for ${N} stat calls, object and flat replies interleaved`, async () => {
    for (const round of [1, 2]) {
      for (const form of ["object", "flat"]) {
        const env: Record<string, string> = { MEMFS_TIMEOUT: "0", MEMFS_FLAT: form === "flat" ? "1" : "0" };
        const m = await startMemfs({ env });
        const f = path.join(m.mnt, "f");
        run("touch", [f]);
        m.child.kill("SIGUSR1"); // reset counters and the CPU baseline
        await new Promise((r) => setTimeout(r, 100));
        const t0 = process.hrtime.bigint();
        const py = run("python3", ["-c", `import os\nfor i in range(${N}): os.stat(${JSON.stringify(f)})`]);
        const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
        expect(py.status).toBe(0);
        const s = await m.stats();
        const cpu = s.cpuUserUs + s.cpuSystemUs;
        console.log(
          `round ${round}, ${form} replies: stat x${N}: ${s.requests} requests ${JSON.stringify(s.ops)}; ` +
            `daemon CPU ${(cpu / 1000).toFixed(0)} ms (user ${(s.cpuUserUs / 1000).toFixed(0)}, ` +
            `sys ${(s.cpuSystemUs / 1000).toFixed(0)}) = ${(cpu / s.requests).toFixed(1)} us/request, ` +
            `${(cpu / N).toFixed(1)} us/stat; wall ${((wallMs / N) * 1000).toFixed(1)} us/stat`,
        );
        expect(s.requests).toBeGreaterThanOrEqual(N);
        await m.stop();
      }
    }
  }, 600_000);

  it("write throughput with 1 MiB writes", async () => {
    const m = await startMemfs();
    const f = path.join(m.mnt, "big");
    for (const label of ["new file", "rewrite in place"]) {
      m.child.kill("SIGUSR1");
      await new Promise((r) => setTimeout(r, 100));
      const t0 = process.hrtime.bigint();
      const dd = run("dd", ["if=/dev/zero", `of=${f}`, "bs=1M", "count=256", "conv=notrunc,fsync"]);
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      expect(dd.status).toBe(0);
      const st = await m.stats();
      const cpu = st.cpuUserUs + st.cpuSystemUs;
      console.log(
        `dd 256 MiB, ${label}: ${(256 / s).toFixed(0)} MiB/s; ${st.ops["write"]} writes, max ${st.maxWrite} B; ` +
          `daemon CPU ${(cpu / 256 / 1000).toFixed(2)} ms/MiB`,
      );
      expect(st.maxWrite).toBe(1 << 20);
    }
    await m.stop();
  }, 300_000);
});
