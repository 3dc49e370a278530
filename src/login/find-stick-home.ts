/**
 * Which stick holds the user's home: the admin's fixed path, or the FAT32/exFAT sticks found,
 * each mounted in the preferred order until one has a pershome folder (that one stays mounted;
 * the others are looked into and let go, so the user can be told what was not used).
 */
import fs from "node:fs";
import path from "node:path";
import type { Account } from "./account.js";
import { expandPath } from "./config.js";
import { type StickName, messages } from "./notify.js";
import type { Context } from "./session-context.js";
import type { StickInfo } from "./state.js";
import { chooseStick, findCandidates, preferenceOrder } from "./stick-discovery.js";
import { hasPershomeFolder, lazyUnmount, mountStick, unmountPath } from "./stick-mount.js";

export function rmdirQuietly(p: string): void {
  try {
    fs.rmdirSync(p);
  } catch {
    /* still a mount point, or already gone */
  }
}

export async function findStickHome(
  ctx: Context,
  a: Account,
  dir: string,
): Promise<
  | { ok: true; stick: StickInfo; chosen: StickName; ignored: StickName[]; rule: "only" | "label" | "first" }
  | { ok: false; message: string; log: string }
> {
  const { cfg, journal: j } = ctx;
  if (cfg.stickPath) {
    const root = expandPath(cfg.stickPath, a.name, a.uid);
    if (!fs.existsSync(root))
      return { ok: false, message: messages.noStick(), log: `fixed stick path ${root} does not exist` };
    const roots = hasPershomeFolder(root)
      ? [root]
      : fs
          .readdirSync(root)
          .map((n) => path.join(root, n))
          .filter((p) => hasPershomeFolder(p));
    const found = roots.map((r) => ({ device: r, label: path.basename(r) }));
    const choice = chooseStick(found, a.name);
    if (!choice)
      return {
        ok: false,
        message: messages.noFolder([{ label: path.basename(root), device: root }]),
        log: `no pershome folder in ${root} or one level below`,
      };
    const r = choice.chosen.device;
    return {
      ok: true,
      stick: {
        kind: "fixed",
        device: r,
        label: choice.chosen.label,
        fstype: "",
        root: r,
        driver: "fixed path (stick_path)",
      },
      chosen: choice.chosen,
      ignored: choice.ignored,
      rule: choice.rule,
    };
  }

  const { candidates, skipped, problems } = await findCandidates(cfg);
  for (const p of problems) j.warn(`stick discovery: ${p}`);
  for (const s of skipped) j.info(`stick discovery: skipped ${s.device}: ${s.why}`);
  j.info(
    `stick discovery: ${candidates.length} candidate(s)` +
      (candidates.length
        ? `: ${candidates.map((c) => `${c.device} ${c.fstype} "${c.label}"`).join(", ")}`
        : "") +
      (cfg.stickDevices.length
        ? ` (stick_devices = ${cfg.stickDevices.join(" ")})`
        : cfg.removableOnly
          ? " (removable devices only)"
          : ""),
  );
  if (candidates.length === 0)
    return { ok: false, message: messages.noStick(), log: "no FAT32/exFAT stick found" };

  // Try the sticks in the order the rule prefers them: the first with a pershome folder stays
  // mounted at <dir>/stick; every other one is only looked into (at <dir>/probe) so the user can
  // be told it was not used.
  const stickDir = `${dir}/stick`;
  const probeDir = `${dir}/probe`;
  let chosen: StickInfo | null = null;
  const ignored: StickName[] = [];
  const withoutFolder: StickName[] = [];
  const failed: { name: StickName; why: string }[] = [];
  for (const c of preferenceOrder(candidates, a.name)) {
    const mp: string = chosen ? probeDir : stickDir;
    const r = await mountStick(c, mp, a, cfg);
    if (!r.ok) {
      j.warn(`could not mount ${c.device}: ${r.result.summary}`);
      failed.push({
        name: c,
        why: r.result.timedOut ? "it did not answer" : "its filesystem could not be read",
      });
      rmdirQuietly(mp);
      continue;
    }
    j.info(
      `mounted ${c.device} (${c.fstype} "${c.label}") on ${mp} with ${r.mount.driver}: ${r.mount.options}`,
    );
    const has = hasPershomeFolder(mp);
    if (has && !chosen) {
      chosen = {
        kind: "device",
        device: c.device,
        label: c.label,
        fstype: c.fstype,
        root: mp,
        driver: r.mount.driver,
      };
      continue;
    }
    if (has) {
      j.info(
        `${c.device} also has a pershome folder; not used (the rule prefers ${chosen!.device}); unmounting it`,
      );
      ignored.push(c);
    } else {
      j.info(`${c.device} has no pershome folder; unmounting it`);
      withoutFolder.push(c);
    }
    const u = await unmountPath(mp);
    if (u.outcome !== "unmounted") await lazyUnmount(mp);
    rmdirQuietly(mp);
  }
  if (!chosen) {
    if (withoutFolder.length > 0) {
      return {
        ok: false,
        message: messages.noFolder(withoutFolder),
        log: `no pershome folder on ${withoutFolder.map((s) => s.device).join(", ")}`,
      };
    }
    const f = failed[0]!;
    return { ok: false, message: messages.stickFailed(f.name, f.why), log: "no stick could be mounted" };
  }
  const rule =
    ignored.length === 0 ? "only" : chosen.label.toLowerCase() === a.name.toLowerCase() ? "label" : "first";
  return { ok: true, stick: chosen, chosen, ignored, rule };
}
