// Summarises a V8 .cpuprofile: self time per function, top N.
import fs from "node:fs";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  fn: string;
  ms: number;
  share: number;
}

export function topSelfTime(file: string, n = 15): SelfTime[] {
  const p = JSON.parse(fs.readFileSync(file, "utf8")) as Profile;
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const acc = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    total += dt;
    const cf = byId.get(id)?.callFrame;
    const where = cf?.url
      ? ` ${cf.url.replace(/^.*\/(dist|node_modules)\//, "$1/")}:${cf.lineNumber + 1}`
      : "";
    const key = `${cf?.functionName || "(anonymous)"}${where}`;
    acc.set(key, (acc.get(key) ?? 0) + dt);
  });
  return [...acc.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([fn, ms]) => ({ fn, ms, share: ms / total }));
}

if (process.argv[1]?.endsWith("profile.js")) {
  for (const f of process.argv.slice(2)) {
    console.log(`## ${f}`);
    for (const t of topSelfTime(f, 20))
      console.log(`${(t.share * 100).toFixed(1).padStart(5)}%  ${t.ms.toFixed(0).padStart(7)} ms  ${t.fn}`);
  }
}
