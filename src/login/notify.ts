/**
 * What the user is told, in plain words, and how it reaches them: the hook's stdout (pam_exec
 * `stdout` turns it into a PAM message: terminal and ssh logins show it) and a message file
 * that the desktop notifier (bin/pershome-notify, started by XDG autostart) shows with zenity or
 * notify-send, since graphical greeters often drop PAM messages.
 */
import fs from "node:fs";

export interface StickName {
  label: string;
  device: string;
}

export function stickName(s: StickName): string {
  const dev = s.device.replace(/^\/dev\//, "");
  return s.label ? `"${s.label}" (${dev})` : dev;
}

// The stick tools (src/sticktools) prepare a stick; by hand, the folder is all it takes.
const PREPARE =
  'prepare it: run "pershome gui" (or "pershome init") with the stick plugged in, or create a folder ' +
  'called "pershome" at the top of the stick on any computer';

export const messages = {
  onStick: (s: StickName): string => `pershome: your home folder is on your USB stick ${stickName(s)}.`,
  shared: (s: StickName): string =>
    `pershome: your home folder is on your USB stick ${stickName(s)} (shared with your other open session).`,
  twoSticks: (chosen: StickName, ignored: StickName[], rule: "label" | "first" | "only"): string =>
    `pershome: your home folder is on the USB stick ${stickName(chosen)}` +
    (rule === "label" ? ", which is labelled with your user name. " : ", the first one plugged in. ") +
    `${ignored.length === 1 ? "The stick" : "The sticks"} ${ignored.map(stickName).join(", ")} also ` +
    `${ignored.length === 1 ? "has" : "have"} a pershome folder and ${ignored.length === 1 ? "was" : "were"} not used. ` +
    "To choose a stick, give it your user name as its label, or plug in only one.",
  noStick: (): string =>
    "pershome: no USB stick with a pershome folder was found, so you are using this computer's usual home " +
    "folder (what you save now is not on your stick). To use your stick: log out, " +
    `plug it in and log in again. If the stick is new, first ${PREPARE}.`,
  noFolder: (sticks: StickName[]): string =>
    `pershome: the USB stick ${sticks.map(stickName).join(", ")} has no pershome folder, so you are using ` +
    "this computer's usual home folder (what you save now is not on your stick). To keep your home on " +
    `the stick, ${PREPARE}; then log out and log in again with the stick plugged in.`,
  stickFailed: (s: StickName | null, why: string): string =>
    `pershome: your USB stick${s ? " " + stickName(s) : ""} could not be used (${why}), so you are using ` +
    "this computer's usual home folder. Log out, check the stick on another computer " +
    "(or run a disk check on it) and log in again; if it keeps happening, ask your administrator.",
  otherSession: (): string =>
    "pershome: you are still logged in elsewhere on this computer without your USB stick, so the stick " +
    "was not used for this login either. Log out of every session and log in again with the stick plugged in.",
  pulled: (s: StickName): string =>
    `pershome: your USB stick ${stickName(s)} was removed or stopped working while you were logged in. ` +
    "Files saved before that are on the stick; new changes cannot be saved. Plug the stick back in and " +
    "log out (and in again), or just log out.",
  layerLost: (s: StickName): string =>
    `pershome: your home folder on the USB stick ${stickName(s)} stopped working while you were logged in. ` +
    "Files saved before that are on the stick; new changes cannot be saved. Log out and log in again " +
    "to get your home back.",
} as const;

/** The hook's way to the user's terminal: pam_exec's `stdout` turns this into a PAM message. */
export function tellPam(text: string): void {
  try {
    fs.writeSync(1, text + "\n");
  } catch {
    /* nobody listening (no `stdout` option): the log has it */
  }
}

export function messageFile(messageDir: string, user: string): string {
  return `${messageDir}/${user}`;
}

/**
 * Leaves a message for the user's desktop notifier: <message_dir>/<user>, owned by the user,
 * mode 0600, in a root-owned directory (0711) others cannot list.
 */
export function leaveMessage(messageDir: string, user: string, uid: number, gid: number, text: string): void {
  fs.mkdirSync(messageDir, { recursive: true, mode: 0o711 });
  fs.chmodSync(messageDir, 0o711);
  const file = messageFile(messageDir, user);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text + "\n", { mode: 0o600 });
  fs.chownSync(tmp, uid, gid);
  fs.renameSync(tmp, file);
}

export function clearMessage(messageDir: string, user: string): void {
  fs.rmSync(messageFile(messageDir, user), { force: true });
}
