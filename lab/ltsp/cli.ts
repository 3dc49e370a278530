#!/usr/bin/env node
// Brings the LTSP lab up and gives a shell on a client, for reproducing a field bug by hand:
//   npm run lab                          # server + clients "college" and "library", shell on college
//   npm run lab -- --clients a,b,c
// Each line typed runs as root on the current client (through the lab agent). Lines starting with
// ":" drive the lab; ":help" lists them. Everything is torn down on :quit, Ctrl-D or Ctrl-C.
import { parseArgs } from "node:util";
import { createInterface } from "node:readline/promises";
import { adminSetup, labPassword } from "./admin.js";
import { Lab } from "./lab.js";
import type { Machine } from "./machine.js";
import type { Stick, StickKind } from "./stick.js";

const HELP = `Lines run as root on the current client. Lab commands:
  :use CLIENT                 switch to another client
  :server CMD                 run CMD as root in the LTSP server container
  :stick NAME fat32|exfat [prepared]   make a stick (prepared: with a bare /pershome folder)
  :plug NAME                  plug stick NAME into the current client
  :pull NAME                  pull it out (whatever the client is doing)
  :ls NAME [PATH]             list a folder of a pulled stick from the host (mtools / exfat-fuse)
  :fsck NAME                  check a pulled stick from the host
  :login USER CMD             log USER in with the password (ssh to the client: pamltsp, SSHFS,
                              pershome), run CMD, log out
  :console                    the current client's console, last lines
  :quit                       tear everything down`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      clients: { type: "string", default: "college,library" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(`npm run lab [-- --clients a,b]\n\n${HELP}\n`);
    return;
  }
  const names = values.clients.split(",").filter(Boolean);
  const lab = await Lab.up({
    clients: names,
    snapshots: false,
    provision: (m) => adminSetup(m),
  });
  const sticks = new Map<string, Stick>();
  let current: Machine = lab.client(names[0]!);
  process.stdout.write(`\nThe lab is up. Logs: ${lab.logDir}\n${HELP}\n\n`);
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  const stick = (n: string | undefined): Stick => {
    const s = sticks.get(n ?? "");
    if (!s) throw new Error(`no stick ${n}; make one with :stick NAME fat32|exfat`);
    return s;
  };
  const prompt = (): void => {
    process.stdout.write(`${current.name}# `);
  };
  prompt();
  // The async iterator buffers lines, so commands piped in (a scripted reproduction) all run.
  try {
    for await (const raw of rl) {
      const line = raw.trim();
      if (!line) {
        prompt();
        continue;
      }
      try {
        if (!line.startsWith(":")) {
          const r = await current.execute(line, 600_000);
          process.stdout.write(r.output + (r.rc ? `[exit ${r.rc}]\n` : ""));
          prompt();
          continue;
        }
        const [cmd, ...args] = line.slice(1).split(/\s+/);
        switch (cmd) {
          case "quit":
          case "q":
            return;
          case "help":
            process.stdout.write(HELP + "\n");
            break;
          case "use":
            current = lab.client(args[0] ?? "");
            break;
          case "server": {
            const r = await lab.server.execute(args.join(" "));
            process.stdout.write(r.output + (r.rc ? `[exit ${r.rc}]\n` : ""));
            break;
          }
          case "stick": {
            const s = await lab.newStick(args[0] ?? "stick", (args[1] ?? "fat32") as StickKind);
            if (args[2] === "prepared") await s.mkdir("/pershome");
            sticks.set(s.name, s);
            process.stdout.write(`${s.image}\n`);
            break;
          }
          case "plug":
            await stick(args[0]).plugInto(current);
            process.stdout.write(`plugged: ${stick(args[0]).guestDevice}\n`);
            break;
          case "pull":
            await stick(args[0]).pull();
            break;
          case "ls":
            process.stdout.write((await stick(args[0]).list(args[1] ?? "/")).join("\n") + "\n");
            break;
          case "fsck":
            process.stdout.write((await stick(args[0]).fsck()).output + "\n");
            break;
          case "login": {
            const user = args[0] ?? "";
            const r = await current.login(
              user,
              labPassword(user),
              args.slice(1).join(" ") || "true",
              600_000,
            );
            process.stdout.write(r.output + (r.rc ? `[exit ${r.rc}]\n` : ""));
            break;
          }
          case "console":
            process.stdout.write(current.consoleTail(40) + "\n");
            break;
          default:
            process.stdout.write(`unknown lab command :${cmd} (:help lists them)\n`);
        }
      } catch (e) {
        process.stdout.write(`${e instanceof Error ? e.message : String(e)}\n`);
      }
      prompt();
    }
  } finally {
    rl.close();
    lab.down();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`lab: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
