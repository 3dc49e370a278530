/** `pershome check [--repair] [STICK]`: the report in plain words, the repair, the re-check. */
import { EXIT, Output, StickError } from "./common.js";
import { checkHome, problems } from "./check.js";
import type { Finding } from "./check.js";
import { askForStick } from "./find-sticks.js";
import { openStick, refuseIfInUse } from "./locate.js";
import { newerMessage } from "./marker-state.js";
import { repairHome } from "./repair.js";

export interface CheckArgs {
  stick?: string;
  repair: boolean;
  force: boolean;
  json: boolean;
}

const plain = (f: Finding): Record<string, unknown> => ({
  kind: f.kind,
  severity: f.severity,
  path: f.path,
  message: f.message,
  fix: f.fix,
});

export async function checkCommand(a: CheckArgs, out: Output): Promise<number> {
  const given = a.stick ?? (await askForStick(a.repair ? "check --repair" : "check"));
  const stick = openStick(given, { force: a.force, readOnlyMount: !a.repair });
  try {
    const report = checkHome(stick.home);
    const m = report.marker;
    if (m.state === "no-home" || m.state === "home-not-dir") {
      throw new StickError(
        "not-prepared",
        `The stick at ${stick.root} has no pershome folder, so there is nothing to check. Run "pershome init ${given}" to prepare it.`,
      );
    }
    if (m.state === "newer") throw new StickError("newer-format", newerMessage(m.version));
    refuseIfInUse(stick.home);
    const found = report.findings;
    const probs = problems(report);
    out.say(
      `Checked the pershome home on ${stick.root} (${stick.fsName}): ${report.counts.files} files in ${report.counts.dirs} folders, ${report.counts.records} metadata records.`,
    );
    const list = (fs: Finding[]): void => {
      for (const f of fs)
        out.say(
          `  - ${f.path}: ${f.message}.${a.repair || f.severity === "note" ? "" : ` Repair ${f.fix}.`}`,
        );
    };
    if (
      probs.length === 0 &&
      !(a.repair && found.some((f) => f.fix !== "nothing" && !f.fix.startsWith("nothing")))
    ) {
      if (found.length > 0) {
        out.say("Notes:");
        list(found);
      }
      out.say("Everything is in order.");
      out.result({
        ok: true,
        clean: true,
        stick: stick.root,
        findings: found.map(plain),
        repaired: [],
        lostFound: [],
      });
      return EXIT.ok;
    }
    if (!a.repair) {
      out.say(`Found ${probs.length} problem(s):`);
      list(found);
      out.say(
        `Nothing was changed. No file is lost either way: pershome shows files whose metadata is damaged with default permissions.`,
      );
      out.say(`To fix what can be fixed, run: pershome check --repair ${given}`);
      out.result({
        ok: true,
        clean: false,
        stick: stick.root,
        findings: found.map(plain),
        problems: probs.length,
      });
      return EXIT.problems;
    }
    if (stick.readOnly) {
      throw new StickError(
        "read-only",
        `The stick at ${stick.root} is read-only, so nothing could be repaired (${probs.length} problem(s) found; run without --repair to see them). Make it writable, then try again.`,
      );
    }
    out.say(`Found ${probs.length} problem(s); repairing:`);
    const r = repairHome(report);
    for (const x of r.fixed) out.say(`  - ${x.finding.path}: ${x.finding.message}. Done: ${x.done}.`);
    for (const x of r.failed)
      out.say(`  - ${x.finding.path}: ${x.finding.message}. NOT repaired (${x.why}).`);
    if (r.lostFound.length > 0) {
      out.say(`Put in /lost+found (listed in /lost+found/LISTING.txt; nothing was deleted):`);
      for (const l of r.lostFound) out.say(`    ${l}`);
    }
    const after = checkHome(stick.home);
    const left = problems(after);
    if (left.length === 0) out.say("The stick is in order now.");
    else {
      out.say(`${left.length} problem(s) remain:`);
      list(left);
      out.say(
        "Run the check again; if they stay, copy your files off the stick (they are all readable) and prepare it again.",
      );
    }
    out.result({
      ok: true,
      clean: left.length === 0,
      stick: stick.root,
      findings: found.map(plain),
      repaired: r.fixed.map((x) => ({ ...plain(x.finding), done: x.done })),
      failed: r.failed.map((x) => ({ ...plain(x.finding), why: x.why })),
      lostFound: r.lostFound,
      remaining: left.map(plain),
    });
    return left.length === 0 ? EXIT.ok : EXIT.problems;
  } finally {
    stick.release();
  }
}
