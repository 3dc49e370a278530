import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeName,
  decodeNameGeneral,
  encodeName,
  encodeNameGeneral,
  foldKey,
  storedToBytes,
  bytesToStored,
  twinVariant,
} from "../../src/format/names.js";

const user = (s: string): string => Buffer.from(s, "utf8").toString("latin1");
const bytes = (...b: number[]): string => Buffer.from(b).toString("latin1");

/** What FAT32 long names and exFAT refuse or mangle. */
function fatCanHold(stored: string): boolean {
  if (stored.length > 255) return false;
  // eslint-disable-next-line no-control-regex -- controls are exactly what the encoding must escape
  if (/["*:<>?\\|\u0000-\u001f/]/.test(stored)) return false;
  if (/[. ]$/.test(stored)) return false;
  if (/^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\.|$)/i.test(stored)) return false;
  return true;
}

/** Linux names: 1..255 bytes, no '/' or NUL, not '.' or '..'. */
const linuxName = fc
  .uint8Array({ minLength: 1, maxLength: 255 })
  .map((a) => Buffer.from(a.map((b) => (b === 0 || b === 0x2f ? 0x41 : b))).toString("latin1"))
  .filter((s) => s !== "." && s !== "..");
const utf8Name = fc
  .string({ unit: "binary", minLength: 1, maxLength: 80 })
  .map((s) => user(s.replace(/[/\0]/g, "_")))
  .filter((s) => s.length <= 255 && s !== "." && s !== "..");

describe("name encoding", () => {
  it("keeps ordinary names as they are", () => {
    for (const n of ["report.odt", "Documents", ".bashrc", "héllo wörld.txt", "日本語", "a b", " lead"]) {
      expect(encodeName(user(n))).toBe(n);
    }
  });

  it("maps characters FAT forbids like Cygwin and WSL do", () => {
    expect(encodeName(user('a:b*c?d"e<f>g|h\\i'))).toBe(
      "a\uf03ab\uf02ac\uf03fd\uf022e\uf03cf\uf03eg\uf07ch\uf05ci",
    );
    expect(encodeName(user("tab\there"))).toBe("tab\uf009here");
  });

  it("keeps trailing dots and spaces", () => {
    expect(encodeName(user("name. "))).toBe("name\uf02e\uf020");
    expect(encodeName(user("..."))).toBe("\uf02e\uf02e\uf02e");
  });

  it("makes DOS device names openable on Windows", () => {
    expect(encodeName(user("CON"))).toBe("CO\uf04e");
    expect(encodeName(user("nul.txt"))).toBe("nu\uf06c.txt");
    expect(encodeName(user("com1"))).toBe("com\uf031");
    expect(encodeName(user("console"))).toBe("console");
  });

  it("never produces a reserved .pershome name", () => {
    expect(encodeName(user(".pershome"))).toBe("\uf02epershome");
    expect(encodeName(user(".pershome.meta.a")).startsWith(".pershome")).toBe(false);
  });

  it("stores bytes that are not UTF-8", () => {
    expect(encodeName(bytes(0x61, 0xff, 0x62))).toBe("a\uf27fb");
    expect(decodeName("a\uf27fb")).toBe(bytes(0x61, 0xff, 0x62));
  });

  it("escapes private-use characters the user really typed", () => {
    const typed = user("x\uf03ay\uf0fe");
    expect(encodeName(typed)).toBe("x\uf0ff\uf03ay\uf0ff\uf0fe");
    expect(decodeName(encodeName(typed))).toBe(typed);
  });

  it("decodes names written by Cygwin/WSL on Windows", () => {
    expect(decodeName("a\uf03ab")).toBe("a:b");
  });

  it("round-trips every Linux name (property)", () => {
    fc.assert(
      fc.property(linuxName, (n) => {
        const stored = encodeName(n);
        expect(decodeName(stored)).toBe(n);
        expect(decodeName(twinVariant(stored, 3))).toBe(n);
        expect(bytesToStored(storedToBytes(stored))).toBe(stored);
      }),
      { numRuns: 3000 },
    );
    fc.assert(
      fc.property(utf8Name, (n) => {
        expect(decodeName(encodeName(n))).toBe(n);
      }),
      { numRuns: 3000 },
    );
  });

  it("takes ASCII names the short way to the same result (property)", () => {
    // names from the characters the fast paths decide on: dots and spaces (trailing ones),
    // what FAT forbids, controls and DEL, device names and the layer's prefix
    const piece = fc.constantFrom(
      "a",
      "B",
      ".",
      " ",
      ":",
      "?",
      "\\",
      "\x01",
      "\x1f",
      "\x7f",
      "con",
      "NUL",
      "lpt1",
      ".pershome",
      "~",
    );
    const asciiName = fc
      .array(piece, { minLength: 1, maxLength: 12 })
      .map((a) => a.join(""))
      .filter((s) => s !== "." && s !== "..");
    fc.assert(
      fc.property(asciiName, (n) => {
        const stored = encodeName(n);
        expect(stored).toBe(encodeNameGeneral(n));
        expect(decodeName(stored)).toBe(decodeNameGeneral(stored));
        expect(decodeName(n)).toBe(decodeNameGeneral(n)); // a name another system stored as it is
        expect(storedToBytes(n)).toBe(Buffer.from(n, "utf8").toString("latin1"));
        expect(bytesToStored(n)).toBe(n);
      }),
      { numRuns: 5000 },
    );
  });

  it("always gives a name FAT can hold, of at most 255 units (property)", () => {
    fc.assert(
      fc.property(linuxName, (n) => {
        expect(fatCanHold(encodeName(n))).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it("gives different user names different stored names (property)", () => {
    fc.assert(
      fc.property(linuxName, linuxName, (a, b) => {
        if (a !== b) expect(encodeName(a)).not.toBe(encodeName(b));
      }),
      { numRuns: 3000 },
    );
  });

  it("folds case like FAT, broadly", () => {
    expect(foldKey("Makefile")).toBe(foldKey("makefile"));
    expect(foldKey("ÉTÉ")).toBe(foldKey("été"));
    expect(foldKey(twinVariant("Makefile", 1))).not.toBe(foldKey("makefile"));
  });
});
