// The report: a Markdown table of medians and ratios, an SVG bar chart of the ratios, the JSON.
import type { CandidateName } from "./candidates.js";

export interface Row {
  lower: string;
  step: string;
  kind: string;
  candidate: CandidateName;
  /** Seconds (or MiB for memory rows), one per repeat; failures are not timed. */
  values: number[];
  /** what the values count, when not seconds or memory's MiB (writes rows: "requests", "MiB") */
  unit?: string;
  /** "ok", "unsupported" (the floor lacks the feature) or an error message. */
  status: string;
  /** requests rows: each repeat's FUSE requests by opcode (their totals are the values) */
  detail?: Record<string, number>[];
}

export const median = (xs: number[]): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export interface Line {
  lower: string;
  step: string;
  kind: string;
  unit: string;
  cells: Record<CandidateName, string>;
  med: Partial<Record<CandidateName, number>>;
  vsBindfs?: number;
  vsPosixovl?: number;
  vsFloor?: number;
}

export function lines(rows: Row[]): Line[] {
  const out: Line[] = [];
  const keys = [...new Set(rows.map((r) => `${r.lower}\u0000${r.step}`))];
  for (const k of keys) {
    const [lower, step] = k.split("\u0000") as [string, string];
    const rs = rows.filter((r) => r.lower === lower && r.step === step);
    const kind = rs[0]!.kind;
    const unit = rs[0]!.unit ?? (kind === "memory" ? "MiB" : "s");
    const digits = unit === "requests" ? 0 : unit === "MiB" ? 1 : 3;
    const cells = { floor: "–", bindfs: "–", posixovl: "–", pershome: "–" } as Record<CandidateName, string>;
    const med: Partial<Record<CandidateName, number>> = {};
    for (const r of rs) {
      if (r.status === "ok" && r.values.length === 0) cells[r.candidate] = "skip";
      else if (r.status === "ok") {
        med[r.candidate] = median(r.values);
        cells[r.candidate] = med[r.candidate]!.toFixed(digits);
      } else cells[r.candidate] = r.status === "unsupported" ? "n/a" : "FAIL";
    }
    const ratio = (a?: number, b?: number): number | undefined => (a !== undefined && b ? a / b : undefined);
    const line: Line = { lower, step, kind, unit, cells, med };
    if (kind !== "memory") {
      line.vsBindfs = ratio(med.pershome, med.bindfs);
      line.vsPosixovl = ratio(med.pershome, med.posixovl);
      line.vsFloor = ratio(med.pershome, med.floor);
    }
    out.push(line);
  }
  return out;
}

function target(l: Line): string {
  if (l.kind === "memory") return (l.med.pershome ?? Infinity) < 100 ? "ok (<100 MiB)" : "MISS (<100 MiB)";
  // the fat32 rows come from the VM (TCG): its seconds are not the machine's
  if (l.kind === "mount" && l.lower === "fat32") return "(in the VM: seconds not comparable)";
  if (l.kind === "mount") return (l.med.pershome ?? Infinity) < 1 ? "ok (<1 s)" : "MISS (<1 s)";
  if (l.kind === "login") return l.med.pershome === undefined ? "FAIL" : "(measured; no target)";
  if (l.kind === "writes") return "(measured; no target)";
  const miss: string[] = [];
  if (l.vsPosixovl !== undefined && l.vsPosixovl >= 1) miss.push("slower than posixovl");
  const lim = l.kind === "io" ? 1.2 : 1.5;
  if (l.vsBindfs !== undefined && l.vsBindfs > lim) miss.push(`>${lim}x bindfs`);
  if (l.med.pershome === undefined) miss.push("pershome failed");
  return miss.length ? `MISS: ${miss.join(", ")}` : "ok";
}

const fx = (x?: number): string => (x === undefined ? "–" : `${x.toFixed(2)}x`);

export function markdown(rows: Row[]): string {
  const out: string[] = [
    "| lower | step | unit | floor | bindfs | posixovl | pershome | /bindfs | /posixovl | /floor | target |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const l of lines(rows.filter((r) => r.kind !== "requests"))) {
    const c = l.cells;
    out.push(
      `| ${l.lower} | ${l.step} | ${l.unit} | ${c.floor} | ${c.bindfs} | ${c.posixovl} | ${c.pershome} | ${fx(l.vsBindfs)} | ${fx(l.vsPosixovl)} | ${fx(l.vsFloor)} | ${target(l)} |`,
    );
  }
  out.push(...requestsTable(rows));
  const failures = rows.filter((r) => r.status !== "ok" && r.status !== "unsupported");
  if (failures.length) {
    out.push("", "Failures:");
    for (const f of failures)
      out.push(`- ${f.lower} / ${f.step} / ${f.candidate}: ${f.status.replace(/\s+/g, " ").slice(0, 300)}`);
  }
  return out.join("\n") + "\n";
}

/**
 * The FUSE requests pershome got per step (what each step costs in round trips): the total of
 * the repeat with the median total, and that repeat's opcodes, most first.
 */
function requestsTable(rows: Row[]): string[] {
  const rs = rows.filter((r) => r.kind === "requests" && r.detail?.length);
  if (!rs.length) return [];
  const out = ["", "FUSE requests to pershome per step (the median repeat):", ""];
  out.push("| lower | step | requests | by opcode |", "|---|---|---|---|");
  for (const r of rs) {
    const m = median(r.values);
    const d = r.detail![r.values.findIndex((v) => v === m)] ?? r.detail![0]!;
    const ops = Object.entries(d)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v}`)
      .join(", ");
    out.push(`| ${r.lower} | ${r.step.replace(/: FUSE requests$/, "")} | ${m.toFixed(0)} | ${ops} |`);
  }
  return out;
}

const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** Horizontal bars: pershome/bindfs and pershome/posixovl per step, a line at 1x (and 1.5x). */
export function svg(rows: Row[]): string {
  const ls = lines(rows).filter(
    (l) => l.kind !== "writes" && (l.vsBindfs !== undefined || l.vsPosixovl !== undefined),
  );
  const max = Math.max(2, ...ls.flatMap((l) => [l.vsBindfs ?? 0, l.vsPosixovl ?? 0]));
  const W = 900,
    left = 230,
    barW = W - left - 60,
    rowH = 34,
    top = 40;
  const H = top + ls.length * rowH + 40;
  const x = (v: number): number => left + (v / max) * barW;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">pershome time as a ratio (lower is better)</text>`,
    `<rect x="${left}" y="26" width="10" height="8" fill="#3b6fb6"/><text x="${left + 14}" y="34">/ bindfs</text>`,
    `<rect x="${left + 90}" y="26" width="10" height="8" fill="#d9822b"/><text x="${left + 104}" y="34">/ posixovl</text>`,
  ];
  ls.forEach((l, i) => {
    const y = top + i * rowH;
    parts.push(
      `<text x="${left - 6}" y="${y + 19}" text-anchor="end">${esc(`${l.lower}: ${l.step}`)}</text>`,
    );
    for (const [j, v, col] of [
      [0, l.vsBindfs, "#3b6fb6"],
      [1, l.vsPosixovl, "#d9822b"],
    ] as const) {
      if (v === undefined) continue;
      const yy = y + 4 + j * 13;
      parts.push(
        `<rect x="${left}" y="${yy}" width="${(x(v) - left).toFixed(1)}" height="12" fill="${col}"/>`,
      );
      parts.push(`<text x="${(x(v) + 4).toFixed(1)}" y="${yy + 10}">${v.toFixed(2)}x</text>`);
    }
  });
  for (const [v, dash] of [
    [1, ""],
    [1.5, ' stroke-dasharray="4 3"'],
  ] as const) {
    parts.push(`<line x1="${x(v)}" y1="${top - 2}" x2="${x(v)}" y2="${H - 30}" stroke="black"${dash}/>`);
    parts.push(`<text x="${x(v)}" y="${H - 16}" text-anchor="middle">${v}x</text>`);
  }
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}
