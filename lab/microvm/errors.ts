/** Base class for everything the micro-VM runner throws on purpose. */
export class MicroVmError extends Error {
  override name = "MicroVmError";
  constructor(
    message: string,
    /** Tail of the guest's kernel console (boot log), when there is one. */
    readonly consoleTail = "",
    /** Command output captured so far. */
    readonly output = "",
  ) {
    super(message);
  }
}

/** The guest did not finish within timeoutMs; QEMU was killed. */
export class VmTimeoutError extends MicroVmError {
  override name = "VmTimeoutError";
}

/** A host program the runner needs is missing. */
export class MissingToolError extends MicroVmError {
  override name = "MissingToolError";
}
