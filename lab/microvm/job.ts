import { randomBytes } from "node:crypto";
import { isAbsolute } from "node:path";
import { isEnvName, shQuote } from "./shell.js";

export interface GuestShare {
  tag: string;
  guestPath: string;
  readOnly: boolean;
}

export interface JobSpec {
  command: string;
  env: Record<string, string>;
  cwd: string;
  shares: GuestShare[];
  sticks: number;
  msize: number;
  stickWaitMs: number;
  hostname: string;
  nonce?: string;
}

export interface JobFiles {
  nonce: string;
  /** Sourced by guest-init.sh. */
  config: string;
  /** Run by /bin/sh (the host's dash) chrooted into the guest root. */
  jobScript: string;
}

export const DEFAULT_GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export function newNonce(): string {
  return randomBytes(12).toString("hex");
}

function checkGuestPath(p: string, what: string): void {
  if (!isAbsolute(p) || /[\n\0]/.test(p))
    throw new Error(`${what} must be an absolute path: ${JSON.stringify(p)}`);
}

/** Renders the two files the guest reads from the job share. */
export function renderJob(spec: JobSpec): JobFiles {
  const nonce = spec.nonce ?? newNonce();
  checkGuestPath(spec.cwd, "cwd");
  const lines = [
    `NONCE=${shQuote(nonce)}`,
    `MSIZE=${Math.trunc(spec.msize)}`,
    `STICKS=${Math.trunc(spec.sticks)}`,
    `STICK_WAIT_TENTHS=${Math.max(1, Math.ceil(spec.stickWaitMs / 100))}`,
    `GUEST_HOSTNAME=${shQuote(spec.hostname)}`,
    `SHARES=${spec.shares.length}`,
  ];
  spec.shares.forEach((s, i) => {
    checkGuestPath(s.guestPath, "share guestPath");
    if (!/^[A-Za-z0-9_.-]{1,31}$/.test(s.tag)) throw new Error(`bad 9p tag ${s.tag}`);
    lines.push(
      `SHARE_${i}_TAG=${shQuote(s.tag)}`,
      `SHARE_${i}_PATH=${shQuote(s.guestPath)}`,
      `SHARE_${i}_OPTS=${shQuote(s.readOnly ? "ro,cache=mmap" : "cache=mmap")}`,
    );
  });
  const envWords: string[] = [];
  for (const [k, v] of Object.entries(spec.env)) {
    if (!isEnvName(k)) throw new Error(`bad environment variable name ${JSON.stringify(k)}`);
    envWords.push(shQuote(`${k}=${v}`));
  }
  const jobScript = [
    `cd ${shQuote(spec.cwd)} || { echo ${shQuote(`microvm: cannot cd to ${spec.cwd}`)} >&2; exit 125; }`,
    `exec env -i ${envWords.join(" ")} /bin/sh -c ${shQuote(spec.command)}`,
    "",
  ].join("\n");
  return { nonce, config: lines.join("\n") + "\n", jobScript };
}
