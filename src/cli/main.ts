#!/usr/bin/env node
/** The `pershome` command: dispatches subcommands, turns expected failures into plain messages. */
import { parseArgs } from "node:util";
import { MountError } from "../fs/mount.js";
import { UsageError, mountCommand, umountCommand } from "./mount-command.js";
import { STICK_COMMANDS, SUMMARY as STICK_SUMMARY } from "../sticktools/commands.js";
import { pershomeVersion } from "../version.js";

const HELP = `pershome: a POSIX home directory on a FAT32/exFAT USB stick

Usage:
  pershome mount STICK/pershome MOUNTPOINT [--foreground] [--owner UID:GID] [--allow-other]
                 [--auto-unmount] [--poll-us N] [--debug]
  pershome umount MOUNTPOINT [--lazy] [--timeout SECONDS]
  pershome --version
${STICK_SUMMARY}

Examples:
  pershome mount /media/stick/pershome ~/stickhome      # mount, return when ready
  pershome mount /media/stick/pershome /home/joseph -f  # stay in the foreground (services)
  pershome umount ~/stickhome                           # write everything out and unmount

--poll-us N: how long (microseconds, default 200) the daemon may poll for the next request
before it sleeps; 0 never polls (to save power).

Exit codes: 0 done, 1 failed (the message says why), 2 still in use (umount), 64 bad usage.
`;

function microseconds(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 10000)
    throw new UsageError(`--poll-us wants microseconds from 0 to 10000, not "${v}"`);
  return n;
}

async function main(argv: string[]): Promise<number> {
  // the stick tools (init, status, check, migrate, sticks, gui) have their own options
  // loaded only for these commands: a mount starts without the stick tools' modules
  if (STICK_COMMANDS.has(argv[0] ?? ""))
    return (await import("../sticktools/cli.js")).runStickCommand(argv[0]!, argv.slice(1));
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      help: { type: "boolean", short: "h" },
      version: { type: "boolean" },
      foreground: { type: "boolean", short: "f" },
      owner: { type: "string" },
      "allow-other": { type: "boolean" },
      debug: { type: "boolean" },
      "auto-unmount": { type: "boolean" },
      "cache-timeout": { type: "string" },
      "poll-us": { type: "string" },
      lazy: { type: "boolean" },
      timeout: { type: "string" },
    },
  });
  if (values.version) {
    process.stdout.write(`pershome ${pershomeVersion()}\n`);
    return 0;
  }
  const [command, ...rest] = positionals;
  if (values.help || command === undefined || command === "help") {
    process.stdout.write(HELP);
    return values.help || command === "help" ? 0 : 64;
  }
  switch (command) {
    case "mount": {
      if (rest.length !== 2)
        throw new UsageError("mount wants two arguments: the stick's pershome folder and the mount point");
      return mountCommand({
        lowerDir: rest[0]!,
        mountpoint: rest[1]!,
        foreground: values.foreground ?? false,
        ...(values.owner !== undefined ? { owner: values.owner } : {}),
        allowOther: values["allow-other"] ?? false,
        debug: values.debug ?? false,
        autoUnmount: values["auto-unmount"] ?? false,
        ...(values["cache-timeout"] !== undefined ? { cacheTimeout: Number(values["cache-timeout"]) } : {}),
        ...(values["poll-us"] !== undefined ? { pollMicros: microseconds(values["poll-us"]) } : {}),
      });
    }
    case "umount":
    case "unmount":
      if (rest.length !== 1) throw new UsageError("umount wants one argument: the mount point");
      return umountCommand(rest[0]!, values.lazy ?? false, Number(values.timeout ?? 60));
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`pershome: ${(err as Error).message}\nTry "pershome --help".\n`);
      process.exitCode = 64;
    } else if (err instanceof MountError) {
      process.stderr.write(`pershome: ${err.message}\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`pershome: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
