/**
 * Who gets a stick home: admin-wide (opt_in = everyone / nobody), or per user: listed in
 * /etc/ltsp/persistent_homes (name or uid), or holding the marker .persistent_home in their
 * normal home (local or network; checked as the user when root may not look, e.g. NFS with
 * root_squash). System accounts (uid below min_uid) never do.
 */
import fs from "node:fs";
import type { Account } from "./account.js";
import { type LoginConfig, parseUserList } from "./config.js";
import type { Journal } from "./journal.js";
import { runCommand } from "./run.js";

export const MARKER = ".persistent_home";

export interface OptInDecision {
  optedIn: boolean;
  why: string;
}

async function markerExists(a: Account): Promise<{ exists: boolean; how: string }> {
  const p = `${a.home}/${MARKER}`;
  try {
    fs.lstatSync(p);
    return { exists: true, how: "" };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return { exists: false, how: "" };
    // Root may be refused on a network home: ask as the user.
    const r = await runCommand(
      "setpriv",
      [`--reuid=${a.uid}`, `--regid=${a.gid}`, "--clear-groups", "--", "test", "-e", p],
      { timeoutSec: 10 },
    );
    return { exists: r.exitCode === 0, how: ` (checked as the user: root got ${code})` };
  }
}

export async function decideOptIn(
  cfg: Pick<LoginConfig, "optIn" | "listFile" | "marker" | "minUid">,
  a: Account,
  journal: Journal,
): Promise<OptInDecision> {
  if (a.uid < cfg.minUid) return { optedIn: false, why: `uid ${a.uid} is below min_uid ${cfg.minUid}` };
  if (cfg.optIn === "nobody") return { optedIn: false, why: "opt_in = nobody" };
  if (cfg.optIn === "everyone") return { optedIn: true, why: "opt_in = everyone" };
  let text = "";
  try {
    text = fs.readFileSync(cfg.listFile, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT")
      journal.warn(`cannot read ${cfg.listFile}: ${(err as Error).message}`);
  }
  const list = parseUserList(text, cfg.listFile);
  for (const p of list.problems) journal.warn(p);
  if (list.names.has(a.name)) return { optedIn: true, why: `listed in ${cfg.listFile}` };
  if (list.uids.has(a.uid)) return { optedIn: true, why: `uid ${a.uid} listed in ${cfg.listFile}` };
  if (cfg.marker) {
    const m = await markerExists(a);
    if (m.exists) return { optedIn: true, why: `marker ${a.home}/${MARKER} exists${m.how}` };
    return { optedIn: false, why: `not listed in ${cfg.listFile} and no ${a.home}/${MARKER}${m.how}` };
  }
  return { optedIn: false, why: `not listed in ${cfg.listFile} (markers are off)` };
}
