/**
 * The stick tools' command names and one-line summaries, for \`pershome --help\`: kept apart
 * from cli.ts so that \`pershome mount\` loads none of the stick tools (cold start of a mount).
 */
export const STICK_COMMANDS = new Set(["init", "status", "check", "migrate", "sticks", "gui"]);

export const SUMMARY = `  pershome init [STICK] [--skel]            prepare a FAT32/exFAT stick (never reformats)
  pershome status [STICK]                   what is on a stick
  pershome check [--repair] [STICK]         check (and repair) a stick's pershome metadata
  pershome migrate SRC STICK                copy a home onto a stick, keeping everything
  pershome sticks                           list the sticks plugged in
  pershome gui                              the graphical stick helper for students
  (each takes --help, --json)`;
