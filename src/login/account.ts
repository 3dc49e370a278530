/** Looks up the user PAM named, through NSS (local, LDAP, SSSD alike), with `getent passwd`. */
import { runCommand } from "./run.js";

export interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** Parses one passwd line ("name:x:uid:gid:gecos:home:shell"). */
export function parsePasswdLine(line: string): Account | null {
  const f = line.trim().split(":");
  if (f.length < 7) return null;
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid) || f[2] === "" || f[3] === "") return null;
  return { name: f[0]!, uid, gid, home: f[5]! };
}

export async function lookupAccount(user: string): Promise<Account | null> {
  if (user === "" || user.startsWith("-")) return null;
  const r = await runCommand("getent", ["passwd", "--", user], { timeoutSec: 20 });
  if (r.exitCode !== 0) return null;
  const a = parsePasswdLine(r.stdout.split("\n")[0] ?? "");
  return a && a.name === user ? a : null;
}
