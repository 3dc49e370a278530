/** Quotes a string for POSIX sh: 'it'\''s'. Rejects NUL, which no shell word can hold. */
export function shQuote(s: string): string {
  if (s.includes("\0")) throw new Error("cannot pass a NUL byte through the shell");
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** True for a valid environment variable name. */
export function isEnvName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name);
}
