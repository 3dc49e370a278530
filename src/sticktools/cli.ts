/**
 * The stick tools' subcommands of `pershome`: options, --help texts, and turning a StickError
 * into its plain message (or --json) and exit code. src/cli/main.ts hands these commands here.
 */
import { parseArgs } from "node:util";
import { EXIT, Output, StickError } from "./common.js";
import { checkCommand } from "./check-command.js";
import { describeCandidate, findSticks } from "./find-sticks.js";
import { guiCommand } from "./gui.js";
import { initCommand } from "./init.js";
import { migrateCommand } from "./migrate.js";
import { statusCommand } from "./status.js";

export { STICK_COMMANDS, SUMMARY } from "./commands.js";

const CODES = `Exit codes: 0 done, 1 failed or refused (the message says why and what to do),
  2 check found problems (not repaired, or not all), 64 bad usage, 130 migrate interrupted
  (run it again to continue). With --json, one JSON object on stdout: "ok", and on failure
  "reason" (not-found, not-a-stick, not-fat, read-only, full, newer-format, garbage-marker,
  not-prepared, in-use, pulled, mount-failed, source, cancelled, no-stick) and "message".`;

export const HELP: Record<string, string> = {
  init: `pershome init [STICK] [--skel] [--json] [--force]

Prepares an already formatted FAT32 or exFAT USB stick for pershome: creates the folder
"pershome" on it with the format marker. Nothing else on the stick is changed; it is never
reformatted. STICK is the stick's folder (e.g. /media/$USER/STICK) or its device (/dev/sdb1,
mounted for the moment if it is not). Without STICK, the sticks plugged in are listed and you
are asked which one.

Refuses, saying why, a stick that is read-only, full, not FAT32/exFAT, or already prepared by
a newer pershome. Already prepared by this format: says so and changes nothing.

Options:
  --skel         also put the usual starting files (/etc/skel) into the new home, through
                 pershome, so their permissions are kept
  --skel-dir DIR take the starting files from DIR instead of /etc/skel
  --json         print the result as JSON
  --force        accept a folder that is not on a FAT32/exFAT stick (for tests)

Examples:
  pershome init                       # list the sticks and ask
  pershome init /media/joseph/STICK
  sudo pershome init /dev/sdb1 --skel

${CODES}
`,
  status: `pershome status [STICK] [--json]

Shows what is on a stick: whether it is prepared and its format version, how many files and
how much space, when it was last used, whether it was cleanly unmounted, and whether
"pershome check" would find problems. Changes nothing.

Examples:
  pershome status /media/joseph/STICK
  pershome status /dev/sdb1 --json

${CODES}
`,
  check: `pershome check [--repair] [STICK] [--json]

Checks the stick's pershome metadata against its files: after a stick was pulled out, or files
were changed on Windows or macOS. Reports in plain words; changes nothing unless --repair.

With --repair, fixes what it can: rewrites damaged metadata (the crash-safe way pershome always
writes it), forgets records of files that are gone or were changed elsewhere, gives a renamed
file its permissions back, relinks hard links, sets link counts right. It never deletes your
data: anything it cannot put back where it belongs goes to /lost+found in the home, listed in
lost+found/LISTING.txt. Running it twice is harmless: the second run finds nothing.

The home must not be mounted while it is checked (log out, or "pershome umount").

Examples:
  pershome check /media/joseph/STICK
  pershome check --repair /media/joseph/STICK
  pershome check --json /dev/sdb1

${CODES}
`,
  migrate: `pershome migrate SRC STICK [--to FOLDER] [--no-verify] [--json]

Copies a home folder (or any folder) onto a prepared stick, through pershome, keeping
permissions, symbolic links, hard links, fifos, times to the nanosecond and extended
attributes (user.*). Shows a progress bar (bytes, files, time left) on a terminal, plain
lines otherwise. Ctrl-C stops it cleanly; running the same command again continues, skipping
what is already copied and identical. At the end, everything is read back and compared.

Options:
  --to FOLDER    copy into FOLDER inside the stick's home (default: the home itself)
  --no-verify    do not read everything back at the end
  --json         print the result as JSON
  --force        accept a stick folder that is not on FAT32/exFAT (for tests)

Examples:
  pershome migrate ~ /media/joseph/STICK
  pershome migrate ~/Documents /media/joseph/STICK --to Documents

${CODES}
`,
  sticks: `pershome sticks [--json]

Lists the FAT32/exFAT sticks plugged in (USB and removable ones first).

Examples:
  pershome sticks
  pershome sticks --json

${CODES}
`,
  gui: `pershome gui [--skel] [--json]

The stick helper for students: a few windows (zenity) to pick the stick, confirm, prepare it
and see the result, with the same messages as "pershome init". The desktop entry "pershome
stick helper" starts it.

Examples:
  pershome gui

${CODES}
`,
};

class Usage extends Error {}

const OPTIONS = {
  help: { type: "boolean", short: "h" },
  json: { type: "boolean" },
  repair: { type: "boolean" },
  force: { type: "boolean" },
  skel: { type: "boolean" },
  "skel-dir": { type: "string" },
  to: { type: "string" },
  "no-verify": { type: "boolean" },
} as const;

function parse(argv: string[]) {
  try {
    return parseArgs({ args: argv, allowPositionals: true, options: OPTIONS });
  } catch (err) {
    throw new Usage((err as Error).message);
  }
}

export async function runStickCommand(command: string, argv: string[]): Promise<number> {
  const wantsJson = argv.includes("--json");
  const out = new Output(wantsJson);
  try {
    return await dispatch(command, argv, out);
  } catch (err) {
    if (err instanceof Usage) {
      if (wantsJson) out.result({ ok: false, reason: "usage", message: err.message });
      process.stderr.write(`pershome ${command}: ${err.message}\nTry "pershome ${command} --help".\n`);
      return EXIT.usage;
    }
    if (err instanceof StickError) return out.fail(err);
    const e = new StickError("io-error", `unexpected error: ${(err as Error)?.stack ?? String(err)}`);
    return out.fail(e);
  }
}

async function dispatch(command: string, argv: string[], out: Output): Promise<number> {
  const { values: v, positionals: p } = parse(argv);
  if (v.help) {
    process.stdout.write(HELP[command] ?? "");
    return EXIT.ok;
  }
  const allowed: Record<string, string[]> = {
    init: ["force", "skel", "skel-dir"],
    status: ["force"],
    check: ["repair", "force"],
    migrate: ["force", "to", "no-verify"],
    sticks: [],
    gui: ["skel", "skel-dir"],
  };
  for (const k of Object.keys(v)) {
    if (k !== "help" && k !== "json" && !allowed[command]!.includes(k))
      throw new Usage(`--${k} is not an option of "pershome ${command}"`);
  }
  const json = Boolean(v.json);
  const force = Boolean(v.force);
  const maxOne = (what: string): string | undefined => {
    if (p.length > 1) throw new Usage(`${command} takes one ${what}, not ${p.length}`);
    return p[0];
  };
  switch (command) {
    case "init":
      return initCommand(
        {
          stick: maxOne("stick"),
          skel: Boolean(v.skel || v["skel-dir"]),
          skelDir: v["skel-dir"] ?? "/etc/skel",
          force,
          json,
        },
        out,
      );
    case "status":
      return statusCommand({ stick: maxOne("stick"), force, json }, out);
    case "check":
      return checkCommand({ stick: maxOne("stick"), repair: Boolean(v.repair), force, json }, out);
    case "migrate":
      if (p.length !== 2) throw new Usage("migrate wants two arguments: the folder to copy and the stick");
      return migrateCommand(
        { src: p[0]!, stick: p[1]!, to: v.to ?? "", verify: !v["no-verify"], force, json },
        out,
      );
    case "sticks": {
      if (p.length > 0) throw new Usage("sticks takes no arguments");
      const list = findSticks();
      if (list.length === 0)
        out.say(
          "No FAT32 or exFAT stick found. Plug one in (as sold in shops: FAT32 or exFAT), then look again.",
        );
      for (const c of list) out.say(describeCandidate(c));
      out.result({ ok: true, sticks: list });
      return EXIT.ok;
    }
    case "gui":
      if (p.length > 0) throw new Usage("gui takes no arguments");
      return guiCommand(
        { json, skel: Boolean(v.skel || v["skel-dir"]), skelDir: v["skel-dir"] ?? "/etc/skel" },
        out,
      );
    default:
      throw new Usage(`unknown command "${command}"`);
  }
}
