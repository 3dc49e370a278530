/**
 * Name encoding between the user's view (any Linux name: bytes) and the stick (FAT32/exFAT
 * long names). Pure and stateless: see docs/format.md, "Names".
 *
 * Both sides are handled as *byte strings*: JavaScript strings whose characters are bytes
 * 0..255 (Buffer 'latin1'). They are cheap Map keys and turn into Buffers for syscalls
 * without loss, which matters because Linux names need not be UTF-8.
 */

const PUA = 0xf000;
const ESCAPE = 0xf0ff;
const TWIN = 0xf0fe;
const RAW_BYTE = 0xf180; // + byte (0x80..0xff) => U+F200..U+F27F
const PUA_END = 0xf27f;

/** Characters FAT refuses in a long name (besides controls and '/'). */
const FORBIDDEN = new Set([...'"*:<>?\\|'].map((c) => c.charCodeAt(0)));
const DEVICE = /^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\.|$)/i;
/** Stored names starting with this belong to the layer (metadata logs, the .pershome area). */
export const RESERVED_PREFIX = ".pershome";
/** FAT and exFAT both limit a name to 255 UTF-16 code units. */
export const MAX_STORED_UNITS = 255;
export const MAX_NAME_BYTES = 255;

/**
 * Reads bytes as UTF-8. Valid sequences give their code point; each byte that is not part of
 * a valid sequence gives -byte, so callers can tell raw bytes from characters.
 */
function utf8Tokens(bytes: Buffer): number[] {
  const out: number[] = [];
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      out.push(b);
      i++;
      continue;
    }
    let len = 0;
    let cp = 0;
    let min = 0;
    if (b >= 0xc2 && b <= 0xdf) [len, cp, min] = [2, b & 0x1f, 0x80];
    else if (b >= 0xe0 && b <= 0xef) [len, cp, min] = [3, b & 0x0f, 0x800];
    else if (b >= 0xf0 && b <= 0xf4) [len, cp, min] = [4, b & 0x07, 0x10000];
    let ok = len > 0 && i + len <= bytes.length;
    for (let k = 1; ok && k < len; k++) {
      const c = bytes[i + k]!;
      if ((c & 0xc0) !== 0x80) ok = false;
      else cp = (cp << 6) | (c & 0x3f);
    }
    if (ok && cp >= min && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff)) {
      out.push(cp);
      i += len;
    } else {
      out.push(-b);
      i++;
    }
  }
  return out;
}

/** Only characters 0x00..0x7f: the same string as bytes, as UTF-8 and as UTF-16. */
export function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** Printable ASCII FAT takes as it is (most names): nothing to map but a trailing dot or space. */
function isPlainAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || FORBIDDEN.has(c)) return false;
  }
  return true;
}

/** User name (byte string) -> stored name (a Unicode string), without twin marks. */
export function encodeName(user: string): string {
  if (!isPlainAscii(user)) return encodeNameGeneral(user);
  let end = user.length;
  while (end > 0 && (user.charCodeAt(end - 1) === 0x2e || user.charCodeAt(end - 1) === 0x20)) end--;
  let s = user;
  if (end < user.length) {
    s = user.slice(0, end);
    for (let i = end; i < user.length; i++) s += String.fromCharCode(PUA + user.charCodeAt(i));
  }
  return guardWhole(s);
}

/** encodeName for any name; exported for the test that holds the fast path to it. */
export function encodeNameGeneral(user: string): string {
  const tokens = utf8Tokens(Buffer.from(user, "latin1"));
  const out: number[] = [];
  for (const t of tokens) {
    if (t < 0) out.push(RAW_BYTE - t);
    else if ((t >= 1 && t < 0x20) || FORBIDDEN.has(t)) out.push(PUA + t);
    else if (t >= PUA && t <= PUA_END) out.push(ESCAPE, t);
    else out.push(t);
  }
  // Trailing dots and spaces: FAT drops them.
  for (let i = out.length - 1; i >= 0 && (out[i] === 0x2e || out[i] === 0x20); i--) out[i] = PUA + out[i]!;
  return guardWhole(String.fromCodePoint(...out));
}

/** DOS device names and the layer's own prefix, which FAT or pershome would take as theirs. */
function guardWhole(s: string): string {
  const dev = DEVICE.exec(s);
  if (dev) {
    const last = dev[1]!.length - 1;
    return s.slice(0, last) + String.fromCharCode(PUA + s.charCodeAt(last)) + s.slice(last + 1);
  }
  if (s.startsWith(RESERVED_PREFIX)) return String.fromCharCode(PUA + 0x2e) + s.slice(1);
  return s;
}

/** Stored name (a Unicode string) -> user name (byte string). Never fails. */
export function decodeName(stored: string): string {
  // ASCII has no escapes or marks (all in U+F000..U+F27F) and is its own UTF-8
  return isAscii(stored) ? stored : decodeNameGeneral(stored);
}

/** decodeName for any name; exported for the test that holds the fast path to it. */
export function decodeNameGeneral(stored: string): string {
  const bytes: number[] = [];
  const pushChar = (cp: number): void => {
    for (const b of Buffer.from(String.fromCodePoint(cp), "utf8")) bytes.push(b);
  };
  const end = stored.length;
  for (let i = 0; i < end;) {
    const cp = stored.codePointAt(i)!;
    i += cp > 0xffff ? 2 : 1;
    if (cp === ESCAPE && i < end) {
      const next = stored.codePointAt(i)!;
      i += next > 0xffff ? 2 : 1;
      pushChar(next);
    } else if (cp === TWIN && /^\uf0fe*$/.test(stored.slice(i)))
      break; // twin marks end the name
    else if (cp > PUA && cp < PUA + 0x80) bytes.push(cp - PUA);
    else if (cp >= RAW_BYTE + 0x80 && cp <= PUA_END) bytes.push(cp - RAW_BYTE);
    else pushChar(cp);
  }
  return Buffer.from(bytes).toString("latin1");
}

/** The stored name with `n` twin marks (docs/format.md, rule 7). */
export function twinVariant(stored: string, n: number): string {
  return stored + String.fromCharCode(TWIN).repeat(n);
}

/**
 * A key under which names FAT would consider the same compare equal. Deliberately broad
 * (full Unicode case mapping both ways): a false match only costs a twin mark, a missed one
 * would let one file stand in for another. Creates are O_EXCL as well, as the final guard.
 */
export function foldKey(stored: string): string {
  return stored.toUpperCase().toLowerCase();
}

/** Length in UTF-16 code units, the unit FAT and exFAT count names in. */
export function storedUnits(stored: string): number {
  return stored.length;
}

/** Stored name (Unicode) -> byte string of its UTF-8 form, for syscalls. */
export function storedToBytes(stored: string): string {
  if (isAscii(stored)) return stored;
  return Buffer.from(stored, "utf8").toString("latin1");
}

/** Byte string read from the stick -> Unicode stored name, or null if not valid UTF-8. */
export function bytesToStored(bytes: string): string | null {
  if (isAscii(bytes)) return bytes;
  const buf = Buffer.from(bytes, "latin1");
  const s = buf.toString("utf8");
  return Buffer.from(s, "utf8").equals(buf) ? s : null;
}

export function isReservedStored(bytes: string): boolean {
  return bytes.startsWith(RESERVED_PREFIX);
}
