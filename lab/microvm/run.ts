import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { OutputChannel } from "./channel.js";
import { MicroVmError, VmTimeoutError } from "./errors.js";
import { requireTool } from "./host-tools.js";
import { ensureInitramfs } from "./initramfs.js";
import { DEFAULT_GUEST_PATH, renderJob } from "./job.js";
import { findGuestKernel } from "./kernel.js";
import { buildQemuArgs, kernelCmdline, type StickCache } from "./qemu-args.js";
import { forgetDir, removeOnExit } from "./reaper.js";
import { startQemu } from "./vm.js";
import { bootableKernel } from "./vmlinux.js";

export interface StickSpec {
  /** Raw image file (e.g. from lab/sticks makeFat32Stick). Appears as /dev/sdX and /dev/stickN. */
  image: string;
  kind?: "usb";
  /** QEMU cache mode, default "writeback" (see qemu-args.ts for why). */
  cache?: StickCache;
  readOnly?: boolean;
}

export interface ShareSpec {
  hostPath: string;
  guestPath: string;
  readOnly?: boolean;
}

export interface RunInVmOptions {
  /** Run with `sh -c` (the host's /bin/sh) as root, chrooted in the overlay root. */
  command: string;
  /** Plugged in this order: the first is /dev/sda (and /dev/stick0), the next /dev/sdb... */
  sticks?: StickSpec[];
  /** Host directories mounted (9p, passthrough; read-write unless readOnly) at guestPath. */
  shares?: ShareSpec[];
  /** Added to (and overriding) PATH, HOME=/root, LANG=C.UTF-8, TERM=dumb, USER=root... */
  env?: Record<string, string>;
  /** Working directory in the guest; default: this process's cwd (the guest sees the same tree). */
  cwd?: string;
  /** Kill QEMU and reject with VmTimeoutError after this long; default 300 000. */
  timeoutMs?: number;
  /** Guest RAM, default 2048. The overlay's upper layer and /tmp live in it. */
  memoryMb?: number;
  /** Guest CPUs, default 2. */
  cpus?: number;
  /** Command output is appended to this file (truncated first) as it arrives. */
  logFile?: string;
  /** Called with each chunk of command output as it arrives. */
  onOutput?: (chunk: Buffer) => void;
  /** Keep the guest kernel console (boot log, init's progress lines) in this file. */
  consoleLogFile?: string;
  /** Verbose kernel boot log (loglevel=7). */
  verboseBoot?: boolean;
  /** Extra guest kernel command line arguments (default: $PERSHOME_MICROVM_APPEND). */
  kernelArgs?: string;
  /** Extra QEMU arguments, appended last, so a later -machine/-cpu wins (default: $PERSHOME_MICROVM_QEMU_ARGS). */
  qemuArgs?: string[];
  /** Guest kernel version (default: newest installed, or $PERSHOME_VM_KERNEL). */
  kernelVersion?: string;
  /** How long the guest waits for the sticks to show up; default 30 000. */
  stickWaitMs?: number;
  /** Aborting kills QEMU; runInVm then rejects. */
  signal?: AbortSignal;
  /** Called once QEMU is started, with its pid (for diagnostics and leak checks). */
  onQemuStart?: (pid: number) => void;
}

export interface RunInVmResult {
  exitCode: number;
  /** Everything the command wrote to stdout and stderr, interleaved as it arrived. */
  output: string;
  /** From starting QEMU to the command starting in the guest. */
  bootMs: number;
  /** From the call until QEMU exited (includes building the initramfs if needed). */
  totalMs: number;
  /** Guest uptime when the command started (kernel boot + init). */
  guestBootMs: number;
  /** Time spent getting the initramfs and the uncompressed kernel (building them, or finding them in the cache). */
  prepareMs: number;
  /** True when the initramfs had to be built (cold cache). */
  initramfsBuilt: boolean;
}

// 9p message size: the virtio transport caps it at 512000.
const MSIZE = 512_000;
const POWEROFF_GRACE_MS = 20_000;
const DEFAULT_TIMEOUT_MS = 300_000;

function defaultEnv(): Record<string, string> {
  // The host's node may live outside the usual dirs (nvm, /opt): keep its directory on PATH.
  const nodeDir = dirname(process.execPath);
  const path = DEFAULT_GUEST_PATH.split(":").includes(nodeDir)
    ? DEFAULT_GUEST_PATH
    : `${DEFAULT_GUEST_PATH}:${nodeDir}`;
  return {
    PATH: path,
    HOME: "/root",
    LANG: "C.UTF-8",
    TERM: "dumb",
    USER: "root",
    LOGNAME: "root",
    SHELL: "/bin/sh",
  };
}

function tail(s: string, n = 4000): string {
  return s.length > n ? "…" + s.slice(-n) : s;
}

function checkSticks(opts: RunInVmOptions): { image: string; cache: StickCache; readOnly: boolean }[] {
  return (opts.sticks ?? []).map((s) => {
    const image = resolve(s.image);
    if (!existsSync(image) || !statSync(image).isFile())
      throw new MicroVmError(`stick image not found: ${image}`);
    if (s.kind && s.kind !== "usb") throw new MicroVmError(`unsupported stick kind ${String(s.kind)}`);
    return { image, cache: s.cache ?? "writeback", readOnly: s.readOnly ?? false };
  });
}

/** Host directories the guest covers with its own tmpfs: a project living there would vanish. */
const HIDDEN_IN_GUEST = ["/tmp", "/run", "/dev/shm"];

/** The project's root (the folder holding package.json), found from this module. */
function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json")) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

/**
 * The shares asked for, plus the project itself when it lives where the guest mounts its own
 * tmpfs (a clone under /tmp, as CI may make): shared read-only at the same path, so the guest
 * runs the very same tree.
 */
function withProjectShare(shares: ShareSpec[]): ShareSpec[] {
  const root = projectRoot();
  const hidden = HIDDEN_IN_GUEST.some((h) => root === h || root.startsWith(h + "/"));
  const covered = shares.some(
    (s) => root === resolve(s.hostPath) || root.startsWith(resolve(s.hostPath) + "/"),
  );
  return hidden && !covered ? [...shares, { hostPath: root, guestPath: root, readOnly: true }] : shares;
}

function checkShares(
  opts: RunInVmOptions,
): { tag: string; hostPath: string; guestPath: string; readOnly: boolean }[] {
  return withProjectShare(opts.shares ?? []).map((s, i) => {
    const hostPath = resolve(s.hostPath);
    if (!existsSync(hostPath) || !statSync(hostPath).isDirectory())
      throw new MicroVmError(`share not a directory: ${hostPath}`);
    return { tag: `share${i}`, hostPath, guestPath: s.guestPath, readOnly: s.readOnly ?? false };
  });
}

/**
 * Boots a micro-VM, runs `command` as root in it, powers it off. Resolves with the command's exit
 * code and output; rejects (MicroVmError, VmTimeoutError, MissingToolError) only when the VM
 * itself fails. QEMU never outlives the call, nor this process.
 */
export async function runInVm(opts: RunInVmOptions): Promise<RunInVmResult> {
  const t0 = performance.now();
  const qemu = requireTool("qemu-system-x86_64");
  const kernel = findGuestKernel(opts.kernelVersion);
  const initramfs = ensureInitramfs({ kernel });
  const vmlinux = bootableKernel(kernel.image);
  const prepareMs = performance.now() - t0;
  const sticks = checkSticks(opts);
  const shares = checkShares(opts);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const job = renderJob({
    command: opts.command,
    env: { ...defaultEnv(), ...(opts.env ?? {}) },
    cwd: opts.cwd ?? process.cwd(),
    shares,
    sticks: sticks.length,
    msize: MSIZE,
    stickWaitMs: opts.stickWaitMs ?? 30_000,
    hostname: "microvm",
  });

  // Per-run scratch: the job share, the output socket (its path must fit in sockaddr_un's 108
  // bytes, hence /tmp for a long $TMPDIR) and the console log.
  const work = mkdtempSync(join(tmpdir().length > 60 ? "/tmp" : tmpdir(), "pershome-microvm-"));
  const keep = process.env.PERSHOME_MICROVM_KEEP === "1";
  removeOnExit(work);
  const logFd = opts.logFile ? openSync(opts.logFile, "w") : undefined;
  try {
    const jobDir = join(work, "job");
    const consoleLog = join(work, "console.log");
    mkdirSync(jobDir);
    writeFileSync(join(jobDir, "config.sh"), job.config);
    writeFileSync(join(jobDir, "job.sh"), job.jobScript);
    writeFileSync(consoleLog, "");

    const chunks: Buffer[] = [];
    let startedAt: number | undefined;
    let guestBootMs = NaN;
    let exitCode: number | undefined;
    let initFailed = false;
    let kill = (): void => undefined;
    const channel = new OutputChannel(
      join(work, "out.sock"),
      job.nonce,
      (chunk) => {
        chunks.push(Buffer.from(chunk));
        if (logFd !== undefined) writeSync(logFd, chunk);
        opts.onOutput?.(chunk);
      },
      (m) => {
        if (m.kind === "start") {
          startedAt = performance.now();
          guestBootMs = m.guestUptimeS * 1000;
          return;
        }
        if (m.kind === "exit") exitCode = m.code;
        else initFailed = true;
        channel.ack();
        // The guest powers off right after the ack; do not wait forever if it does not.
        setTimeout(() => kill(), POWEROFF_GRACE_MS).unref();
      },
    );
    await channel.listen();

    const args = buildQemuArgs({
      qemu,
      kernel: vmlinux.path,
      initrd: initramfs.path,
      append: kernelCmdline({
        verbose: opts.verboseBoot ?? false,
        extra: opts.kernelArgs ?? process.env.PERSHOME_MICROVM_APPEND ?? "",
      }),
      memoryMb: opts.memoryMb ?? 2048,
      cpus: opts.cpus ?? 2,
      consoleLog,
      outputSocket: join(work, "out.sock"),
      jobDir,
      rootDir: "/",
      shares,
      sticks,
      extraArgs: opts.qemuArgs ?? process.env.PERSHOME_MICROVM_QEMU_ARGS?.split(" ").filter(Boolean) ?? [],
    });
    const qemuStart = performance.now();
    const vm = startQemu(args, qemu);
    kill = () => vm.kill();
    opts.onQemuStart?.(vm.pid);

    let timedOut = false;
    let aborted = false;
    const timer = setTimeout(() => {
      timedOut = true;
      vm.kill();
    }, timeoutMs);
    timer.unref();
    const onAbort = (): void => {
      aborted = true;
      vm.kill();
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();

    const ended = await vm.exited;
    clearTimeout(timer);
    opts.signal?.removeEventListener("abort", onAbort);
    await channel.close();

    const output = Buffer.concat(chunks).toString("utf8");
    const consoleText = readFileSync(consoleLog, "utf8");
    if (opts.consoleLogFile) writeFileSync(opts.consoleLogFile, consoleText);
    const consoleTail = tail(consoleText);
    if (timedOut) {
      const phase = startedAt === undefined ? "still booting" : "command still running";
      throw new VmTimeoutError(
        `micro-VM timed out after ${timeoutMs} ms (${phase}); QEMU killed`,
        consoleTail,
        output,
      );
    }
    if (aborted) throw new MicroVmError("micro-VM aborted; QEMU killed", consoleTail, output);
    if (initFailed) {
      throw new MicroVmError(
        `micro-VM setup failed:\n${tail(output)}\n--- console ---\n${consoleTail}`,
        consoleTail,
        output,
      );
    }
    if (exitCode === undefined) {
      const why = ended.signal ? `killed by ${ended.signal}` : `exited with ${String(ended.code)}`;
      throw new MicroVmError(
        `micro-VM ended without reporting an exit code (QEMU ${why})\n--- qemu stderr ---\n${tail(vm.stderr())}\n--- console ---\n${consoleTail}`,
        consoleTail,
        output,
      );
    }
    return {
      exitCode,
      output,
      bootMs: (startedAt ?? performance.now()) - qemuStart,
      totalMs: performance.now() - t0,
      guestBootMs,
      prepareMs,
      initramfsBuilt: initramfs.built,
    };
  } finally {
    if (logFd !== undefined) closeSync(logFd);
    if (!keep) rmSync(work, { recursive: true, force: true });
    forgetDir(work);
  }
}
