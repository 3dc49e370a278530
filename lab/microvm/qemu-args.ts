import { JOB_TAG, OUTPUT_PORT_NAME, ROOT_TAG } from "./guest-init.js";

/**
 * How QEMU opens a stick image. Both keep no cache inside QEMU for a raw image, so every write the
 * guest sees completed is already in the image file as the host sees it:
 *  - "writeback" (default): writes land in the host page cache; host tools (mtools, fsck.fat,
 *    losetup) read the same page cache, so they see exactly what the guest wrote, even while
 *    QEMU runs or after it is killed. Works on any host filesystem, incl. tmpfs.
 *  - "none": O_DIRECT; also survives a *host* crash, which no test here simulates; fails on tmpfs.
 * Neither hides anything from a pull/kill test: the guest's usb-storage driver treats the stick as
 * write-through (no SYNCHRONIZE CACHE), like a real stick, so the only cache that can lose data
 * on a pull is the guest kernel's own page cache, which is the behaviour under test.
 */
export type StickCache = "writeback" | "none" | "writethrough" | "directsync" | "unsafe";

export interface QemuConfig {
  qemu: string;
  kernel: string;
  initrd: string;
  append: string;
  memoryMb: number;
  cpus: number;
  /** File receiving the kernel console (ttyS0). */
  consoleLog: string;
  /** Unix socket (listened on by the host) for the output port. */
  outputSocket: string;
  /** Directory exported read-only as the job share. */
  jobDir: string;
  /** Host directory exported read-only as the guest's root lower layer; "/" normally. */
  rootDir: string;
  shares: { tag: string; hostPath: string; readOnly: boolean }[];
  sticks: { image: string; cache: StickCache; readOnly?: boolean }[];
  /** Extra raw arguments, appended last. */
  extraArgs?: string[];
}

/** Escapes a value for QEMU's comma-separated option syntax. */
export function qemuOpt(value: string): string {
  return value.replace(/,/g, ",,");
}

export function buildQemuArgs(c: QemuConfig): string[] {
  const a: string[] = [
    "-nodefaults",
    "-no-user-config",
    "-machine",
    "q35",
    "-accel",
    "tcg",
    "-cpu",
    "max",
    "-smp",
    String(c.cpus),
    "-m",
    String(c.memoryMb),
    "-display",
    "none",
    "-no-reboot",
    "-kernel",
    c.kernel,
    "-initrd",
    c.initrd,
    "-append",
    c.append,
    "-chardev",
    `file,id=con,path=${qemuOpt(c.consoleLog)}`,
    "-serial",
    "chardev:con",
    "-chardev",
    `socket,id=out,path=${qemuOpt(c.outputSocket)}`,
    "-device",
    "virtio-serial-pci,id=vser0",
    "-device",
    `virtserialport,bus=vser0.0,chardev=out,name=${OUTPUT_PORT_NAME}`,
    "-fsdev",
    `local,id=fsroot,path=${qemuOpt(c.rootDir)},security_model=none,readonly=on,multidevs=remap`,
    "-device",
    `virtio-9p-pci,fsdev=fsroot,mount_tag=${ROOT_TAG}`,
    "-fsdev",
    `local,id=fsjob,path=${qemuOpt(c.jobDir)},security_model=none,readonly=on`,
    "-device",
    `virtio-9p-pci,fsdev=fsjob,mount_tag=${JOB_TAG}`,
  ];
  c.shares.forEach((s, i) => {
    a.push(
      "-fsdev",
      `local,id=fsshare${i},path=${qemuOpt(s.hostPath)},security_model=passthrough,multidevs=remap${s.readOnly ? ",readonly=on" : ""}`,
      "-device",
      `virtio-9p-pci,fsdev=fsshare${i},mount_tag=${s.tag}`,
    );
  });
  if (c.sticks.length > 0) {
    // qemu-xhci has 4 USB2 + 4 USB3 ports by default; make room for more sticks if asked.
    const ports = Math.min(15, Math.max(4, c.sticks.length));
    a.push("-device", `qemu-xhci,id=xhci,p2=${ports},p3=${ports}`);
    c.sticks.forEach((s, i) => {
      a.push(
        "-drive",
        `if=none,id=stick${i},file=${qemuOpt(s.image)},format=raw,cache=${s.cache}${s.readOnly ? ",readonly=on" : ""}`,
        "-device",
        // serial= is the USB serial number; guest-init.sh uses it to name /dev/stickN.
        `usb-storage,bus=xhci.0,drive=stick${i},removable=on,serial=pershome-stick${i},id=usbstick${i}`,
      );
    });
  }
  a.push(...(c.extraArgs ?? []));
  return a;
}

/** The guest kernel command line. */
export function kernelCmdline(opts: { verbose?: boolean; extra?: string } = {}): string {
  return [
    "console=ttyS0",
    "rdinit=/init",
    "panic=-1", // with -no-reboot, a panic ends QEMU instead of hanging
    "oops=panic",
    opts.verbose ? "loglevel=7" : "quiet loglevel=3",
    "i8042.noaux", // no PS/2 mouse probing
    "tsc=reliable",
    "cryptomgr.notests", // crypto self-tests cost ~0.5 s of emulated CPU
    "no_timer_check",
    opts.extra ?? "",
  ]
    .filter(Boolean)
    .join(" ");
}
