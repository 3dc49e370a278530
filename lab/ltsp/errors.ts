/** Something in the lab itself failed (not the product under test). */
export class LabError extends Error {
  override name = "LabError";
}

/** A command run on a lab machine did not do what the test expected. */
export class CommandFailed extends LabError {
  override name = "CommandFailed";
  constructor(
    readonly machine: string,
    readonly command: string,
    readonly rc: number,
    readonly output: string,
  ) {
    super(`${machine}: \`${command}\` exited ${rc}${output ? `:\n${output.trimEnd()}` : " (no output)"}`);
  }
}
