// Public API of the micro-VM runner: run one shell command as root inside a throwaway QEMU guest
// (Debian's own kernel, TCG), whose root is the host's / (read-only, 9p) under a tmpfs overlay,
// with virtual USB sticks plugged in. See docs/microvm.md.

export { runInVm, type RunInVmOptions, type RunInVmResult, type ShareSpec, type StickSpec } from "./run.js";
export { MicroVmError, MissingToolError, VmTimeoutError } from "./errors.js";
export { findGuestKernel, type GuestKernel } from "./kernel.js";
export { ensureInitramfs, type Initramfs } from "./initramfs.js";
export type { StickCache } from "./qemu-args.js";
