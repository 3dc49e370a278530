#!/usr/bin/env node
// Runs one command in a micro-VM, e.g. to reproduce a FAT32 bug by hand:
//   node dist/lab/microvm/cli.js --stick /tmp/s.img -- 'mount -t vfat /dev/sda /mnt && ls -la /mnt'
// Exit status: the guest command's; 124 on timeout; 125 when the VM itself failed.

import { parseArgs } from "node:util";
import { MicroVmError, runInVm, type ShareSpec, VmTimeoutError } from "./index.js";

const USAGE = `usage: node dist/lab/microvm/cli.js [options] -- COMMAND...

Runs COMMAND (joined with spaces, run by sh -c) as root in a QEMU micro-VM whose root is the host's /
(read-only, with a tmpfs overlay on top). Output streams to stdout; exit status is COMMAND's.

options:
  --stick IMG           plug IMG as a USB stick (repeatable; /dev/sda, /dev/sdb... in order)
  --share HOST:GUEST    mount host directory HOST read-write at GUEST (repeatable; HOST:GUEST:ro for read-only)
  --env NAME=VALUE      set a variable for COMMAND (repeatable)
  --cwd DIR             working directory in the guest (default: the current one)
  --timeout SECONDS     kill the VM after this long (default 300)
  --memory MB           guest RAM (default 2048)
  --cpus N              guest CPUs (default 2)
  --log FILE            also write the output to FILE
  --console FILE        keep the guest's kernel console (boot log) in FILE
  --verbose-boot        full kernel boot messages on the console
  --times               print boot/total times to stderr
  -h, --help            this help`;

function parseShare(s: string): ShareSpec {
  const parts = s.split(":");
  const ro = parts.length === 3 && parts[2] === "ro";
  if (!(parts.length === 2 || ro) || !parts[0] || !parts[1])
    throw new Error(`--share wants HOST:GUEST[:ro], got ${s}`);
  return { hostPath: parts[0], guestPath: parts[1], readOnly: ro };
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      stick: { type: "string", multiple: true },
      share: { type: "string", multiple: true },
      env: { type: "string", multiple: true },
      cwd: { type: "string" },
      timeout: { type: "string" },
      memory: { type: "string" },
      cpus: { type: "string" },
      log: { type: "string" },
      console: { type: "string" },
      "verbose-boot": { type: "boolean" },
      times: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE + "\n");
    return 0;
  }
  if (positionals.length === 0) {
    process.stderr.write(USAGE + "\n");
    return 2;
  }
  const env: Record<string, string> = {};
  for (const e of values.env ?? []) {
    const i = e.indexOf("=");
    if (i <= 0) throw new Error(`--env wants NAME=VALUE, got ${e}`);
    env[e.slice(0, i)] = e.slice(i + 1);
  }
  const num = (v: string | undefined, what: string): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${what} wants a positive number, got ${v}`);
    return n;
  };
  const timeoutS = num(values.timeout, "timeout");
  const r = await runInVm({
    command: positionals.join(" "),
    sticks: (values.stick ?? []).map((image) => ({ image })),
    shares: (values.share ?? []).map(parseShare),
    env,
    ...(values.cwd !== undefined && { cwd: values.cwd }),
    ...(timeoutS !== undefined && { timeoutMs: timeoutS * 1000 }),
    ...(values.memory !== undefined && { memoryMb: num(values.memory, "memory") }),
    ...(values.cpus !== undefined && { cpus: num(values.cpus, "cpus") }),
    ...(values.log !== undefined && { logFile: values.log }),
    ...(values.console !== undefined && { consoleLogFile: values.console }),
    verboseBoot: values["verbose-boot"] ?? false,
    onOutput: (chunk) => process.stdout.write(chunk),
  });
  if (values.times) {
    process.stderr.write(
      `microvm: exit ${r.exitCode}, boot ${Math.round(r.bootMs)} ms (guest ${Math.round(r.guestBootMs)} ms), total ${Math.round(r.totalMs)} ms${r.initramfsBuilt ? `, initramfs built, prepare ${Math.round(r.prepareMs)} ms` : ""}\n`,
    );
  }
  return r.exitCode;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof VmTimeoutError) {
      process.stderr.write(`microvm: ${e.message}\n--- console ---\n${e.consoleTail}\n`);
      process.exitCode = 124;
    } else if (e instanceof MicroVmError) {
      process.stderr.write(`microvm: ${e.message}\n`);
      process.exitCode = 125;
    } else {
      process.stderr.write(`microvm: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 125;
    }
  },
);
