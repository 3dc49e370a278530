/**
 * Checks a mounted home against the torture workload's journal (lab/torture/workload.ts):
 * every promise in force must hold. Returns the violations, and notes (things worth
 * reporting that POSIX does not promise, such as git's renames without a folder fsync).
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex").slice(0, 20);

export interface Verdict {
  promises: number;
  violations: string[];
  notes: string[];
  errors: Map<string, number>;
}

export function verifyJournal(journalText: string, mnt: string): Verdict {
  const files = new Map<string, { ok: Set<string> }>();
  const docs = new Map<string, { confirmed?: string; later: Set<string> }>();
  const links = new Map<string, string>();
  const prefixes = new Map<string, { len: number; sha: string }>();
  const sqlite = new Map<string, number>();
  const git = new Map<string, string[]>();
  const errors = new Map<string, number>();
  for (const line of journalText.split("\n")) {
    const [what, p, a, b] = line.split(" ");
    if (!what || p === undefined) continue;
    switch (what) {
      case "file":
        files.set(p, { ok: new Set([`${a} ${b}`]) });
        break;
      case "pending":
        files.get(p)?.ok.add(`${a} ${b}`);
        break;
      case "forget":
        files.delete(p);
        break;
      case "attempt": {
        const d = docs.get(p) ?? { later: new Set<string>() };
        d.later.add(a!);
        docs.set(p, d);
        break;
      }
      case "saved":
        docs.set(p, { confirmed: a!, later: new Set() });
        break;
      case "symlink":
        links.set(p, a!);
        break;
      case "prefix":
        prefixes.set(p, { len: Number(a), sha: b! });
        break;
      case "sqlite":
        sqlite.set(p, Math.max(sqlite.get(p) ?? 0, Number(a)));
        break;
      case "git":
        git.set(p, [...(git.get(p) ?? []), a!]);
        break;
      case "error": {
        // the cut itself: the layer is gone under the workload's feet
        if (/ENOTCONN|ECONNABORTED|not connected/.test(line)) break;
        const msg = line.split(" ").slice(3).join(" ").replace(/\d+/g, "N");
        errors.set(msg, (errors.get(msg) ?? 0) + 1);
        break;
      }
    }
  }
  const v: string[] = [];
  const notes: string[] = [];
  const P = (p: string): string => path.join(mnt, p);
  const read = (p: string): { data: Buffer; mode: string } | string => {
    try {
      const st = fs.lstatSync(P(p));
      return { data: fs.readFileSync(P(p)), mode: (st.mode & 0o7777).toString(8) };
    } catch (e) {
      return (e as NodeJS.ErrnoException).code ?? String(e);
    }
  };
  for (const [p, { ok }] of files) {
    const got = read(p);
    if (typeof got === "string") v.push(`${p}: ${got} (promised ${[...ok].join(" or ")})`);
    else if (!ok.has(`${sha(got.data)} ${got.mode}`))
      v.push(`${p}: content ${sha(got.data)} mode ${got.mode}, promised ${[...ok].join(" or ")}`);
  }
  for (const [p, d] of docs) {
    const got = read(p);
    if (typeof got === "string") {
      if (d.confirmed) v.push(`${p}: ${got} (a save was confirmed)`);
      continue;
    }
    const s = sha(got.data);
    if (s !== d.confirmed && !d.later.has(s))
      v.push(`${p}: neither the confirmed save nor a later one (${s})`);
    else if (got.mode !== "600") v.push(`${p}: mode ${got.mode}, want 600`);
  }
  for (const [p, target] of links) {
    try {
      const t = fs.readlinkSync(P(p));
      if (t !== target) v.push(`${p}: symlink to ${t}, promised ${target}`);
    } catch (e) {
      v.push(`${p}: ${(e as NodeJS.ErrnoException).code} (a symlink was promised)`);
    }
  }
  for (const [p, { len, sha: want }] of prefixes) {
    const got = read(p);
    if (typeof got === "string") v.push(`${p}: ${got} (${len} bytes promised)`);
    else if (got.data.length < len || sha(got.data.subarray(0, len)) !== want)
      v.push(`${p}: the first ${len} bytes differ (size ${got.data.length})`);
  }
  for (const [p, rows] of sqlite) {
    try {
      const out = execFileSync("sqlite3", [P(p), "PRAGMA integrity_check; SELECT count(*) FROM t;"], {
        encoding: "utf8",
      })
        .trim()
        .split("\n");
      if (out[0] !== "ok") v.push(`${p}: integrity_check says ${out.join(" | ")}`);
      else if (Number(out[1]) < rows) v.push(`${p}: ${out[1]} rows, ${rows} were committed`);
    } catch (e) {
      v.push(`${p}: sqlite3 failed: ${String((e as { stderr?: string }).stderr ?? e).trim()}`);
    }
  }
  for (const [repo, commits] of git) {
    // git fsyncs its files (core.fsync=all) but not the folders it renames them into: a lost
    // commit is git's risk on any filesystem, so it is a note, not a violation.
    const last = commits[commits.length - 1]!;
    const git = (...a: string[]): { ok: boolean; out: string } => {
      try {
        return {
          ok: true,
          out: execFileSync("git", ["-C", P(repo), ...a], { encoding: "utf8", stdio: "pipe" }),
        };
      } catch (e) {
        return { ok: false, out: String((e as { stderr?: string }).stderr ?? e) };
      }
    };
    if (!git("cat-file", "-e", `${last}^{commit}`).ok)
      notes.push(`${repo}: the last acknowledged commit ${last.slice(0, 10)} is missing`);
    const fsck = git("fsck", "--no-dangling", "--no-progress");
    if (!fsck.ok) notes.push(`${repo}: git fsck: ${fsck.out.trim().split("\n").slice(0, 2).join(" / ")}`);
  }
  const promises = files.size + docs.size + links.size + prefixes.size + sqlite.size;
  return { promises, violations: v, notes, errors };
}
