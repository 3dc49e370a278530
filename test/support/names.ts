// The name encoding of docs/format.md ("Names"), written out by hand as test expectations: each
// case is a user name and the stored (lower) name the format says it must have. These are the
// oracle, so they are literal strings, not computed by a second encoder.

/** U+F000 + the ASCII character: the Cygwin/WSL mapping (format rule 2, 3, 4, 5). */
export function pua(ch: string): string {
  return String.fromCharCode(0xf000 + ch.charCodeAt(0));
}

/** The stored form of a byte that is not part of valid UTF-8 (format rule 1): U+F200..U+F27F. */
export function rawByte(byte: number): string {
  if (byte < 0x80 || byte > 0xff) throw new Error(`not a high byte: ${byte}`);
  return String.fromCharCode(0xf200 + (byte - 0x80));
}

/** The case-twin suffix (format rule 7). */
export const TWIN = "\uF0FE";
/** The escape for a private-use character the user really typed (format rule 6). */
export const ESC = "\uF0FF";

export interface NameCase {
  /** what the test calls it */
  why: string;
  /** the user's name, as bytes */
  user: Buffer;
  /** the name stored on the lower filesystem, as the lower's readdir shows it (UTF-8) */
  stored: string;
  /** lowers on which the case cannot exist (e.g. a stored name longer than ext4's 255 bytes) */
  notOn?: readonly string[];
}

const u = (s: string): Buffer => Buffer.from(s, "utf8");

/** Names FAT cannot hold, each with the stored name the format prescribes. */
export const ENCODED_NAMES: readonly NameCase[] = [
  { why: "plain ASCII is stored as-is", user: u("report.odt"), stored: "report.odt" },
  { why: "plain UTF-8 is stored as-is", user: u("Übersicht – 日本語.txt"), stored: "Übersicht – 日本語.txt" },
  { why: "a colon", user: u("a:b"), stored: `a${pua(":")}b` },
  {
    why: 'every character FAT forbids: " * : < > ? \\ |',
    user: u('q"s*c:l<g>q?b\\p|e'),
    stored: `q${pua('"')}s${pua("*")}c${pua(":")}l${pua("<")}g${pua(">")}q${pua("?")}b${pua("\\")}p${pua("|")}e`,
  },
  { why: "a control character (tab)", user: u("tab\there"), stored: `tab${pua("\t")}here` },
  { why: "a control character (0x01)", user: u("x\u0001y"), stored: `x${pua("\u0001")}y` },
  { why: "a trailing dot", user: u("name."), stored: `name${pua(".")}` },
  { why: "a trailing space", user: u("name "), stored: `name${pua(" ")}` },
  {
    why: "several trailing dots and spaces",
    user: u("x . ."),
    stored: `x${pua(" ")}${pua(".")}${pua(" ")}${pua(".")}`,
  },
  { why: "a name of dots only", user: u("..."), stored: `${pua(".")}${pua(".")}${pua(".")}` },
  { why: "an inner dot is kept", user: u("a.b.c"), stored: "a.b.c" },
  { why: "the DOS device name CON", user: u("CON"), stored: `CO${pua("N")}` },
  { why: "a DOS device name before an extension (nul.txt)", user: u("nul.txt"), stored: `nu${pua("l")}.txt` },
  { why: "the DOS device name com1", user: u("com1"), stored: `com${pua("1")}` },
  { why: "lpt9 with two extensions", user: u("LPT9.tar.gz"), stored: `LPT${pua("9")}.tar.gz` },
  {
    why: "a longer word that starts like a device is not one (console)",
    user: u("console"),
    stored: "console",
  },
  { why: "a name beginning with .pershome", user: u(".pershome"), stored: `${pua(".")}pershome` },
  {
    why: "the layer's own log name, made by the user",
    user: u(".pershome.meta.a"),
    stored: `${pua(".")}pershome.meta.a`,
  },
  {
    why: "a private-use character the user typed is escaped",
    user: u(`pua${pua(":")}x`),
    stored: `pua${ESC}${pua(":")}x`,
  },
  {
    why: "a byte that is not UTF-8 (0xff)",
    user: Buffer.from([0x62, 0x61, 0x64, 0xff]),
    stored: `bad${rawByte(0xff)}`,
  },
  {
    why: "Latin-1 bytes (caf\\xe9)",
    user: Buffer.from([0x63, 0x61, 0x66, 0xe9]),
    stored: `caf${rawByte(0xe9)}`,
  },
  {
    why: "a truncated UTF-8 sequence",
    user: Buffer.concat([u("x"), Buffer.from([0xe2, 0x82]), u("y")]),
    stored: `x${rawByte(0xe2)}${rawByte(0x82)}y`,
  },
  { why: "a 255-byte ASCII name", user: u("a".repeat(255)), stored: "a".repeat(255) },
  { why: "a 255-byte name of 3-byte characters", user: u("€".repeat(85)), stored: "€".repeat(85) },
  {
    why: "a 255-byte name of 4-byte characters",
    user: u("😀".repeat(63) + "abc"),
    stored: "😀".repeat(63) + "abc",
  },
  {
    // 255 units on FAT; 765 UTF-8 bytes, which no ext4 directory can hold.
    why: "a 255-byte name of colons (255 encoded characters)",
    user: u(":".repeat(255)),
    stored: pua(":").repeat(255),
    notOn: ["plain"],
  },
];

/** Lower names the layer reserves and never shows. */
export function isReserved(lowerName: string): boolean {
  return lowerName.startsWith(".pershome");
}

/** Shows a name with its private-use characters spelled out, for messages. */
export function show(name: string | Buffer): string {
  const s = typeof name === "string" ? name : name.toString("utf8");
  return JSON.stringify(s).replace(
    /[\uf000-\uf2ff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** Bytes as text for messages and comparisons: valid UTF-8 shown as is, other bytes as \xNN. */
export function showBytes(b: Buffer): string {
  const s = b.toString("utf8");
  if (Buffer.from(s, "utf8").equals(b)) return show(s);
  return JSON.stringify(b.toString("latin1")).replace(
    /[\x80-\xff]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16)}`,
  );
}

/** A path (bytes) from a directory path and a name given as bytes. */
export function bpath(dir: string, name: Buffer | string): Buffer {
  return Buffer.concat([
    Buffer.from(dir + "/", "utf8"),
    typeof name === "string" ? Buffer.from(name, "utf8") : name,
  ]);
}
