// A minimal writer for the "newc" cpio format, the one the Linux kernel unpacks as an initramfs.
// Writing it ourselves (instead of `find | cpio -o`) keeps the archive byte-for-byte reproducible:
// fixed owner, fixed mtime, no staging directory.

export type CpioEntry =
  | { kind: "dir"; path: string; mode?: number }
  | { kind: "file"; path: string; data: Buffer; mode?: number }
  | { kind: "symlink"; path: string; target: string }
  | { kind: "chardev"; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`cpio: field out of range: ${n}`);
  return n.toString(16).padStart(8, "0");
}

function pad4(len: number): Buffer {
  return Buffer.alloc((4 - (len % 4)) % 4);
}

function record(
  ino: number,
  path: string,
  mode: number,
  data: Buffer,
  rdev: { major: number; minor: number } = { major: 0, minor: 0 },
): Buffer[] {
  const name = Buffer.from(path + "\0", "utf8");
  const header =
    "070701" +
    hex8(ino) +
    hex8(mode) +
    hex8(0) + // uid
    hex8(0) + // gid
    hex8((mode & 0o170000) === S_IFDIR ? 2 : 1) + // nlink
    hex8(0) + // mtime: fixed for reproducibility
    hex8(data.length) +
    hex8(0) + // devmajor
    hex8(0) + // devminor
    hex8(rdev.major) +
    hex8(rdev.minor) +
    hex8(name.length) +
    hex8(0); // check
  const head = Buffer.concat([Buffer.from(header, "ascii"), name]);
  return [head, pad4(head.length), data, pad4(data.length)];
}

/** Serialises entries (in the given order; parents must come before children) into a newc archive. */
export function writeCpio(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const seen = new Set<string>();
  for (const e of entries) {
    const path = e.path.replace(/^\/+/, "");
    if (path === "" || path.split("/").includes(".."))
      throw new Error(`cpio: bad path ${JSON.stringify(e.path)}`);
    if (seen.has(path)) throw new Error(`cpio: duplicate path ${path}`);
    seen.add(path);
    switch (e.kind) {
      case "dir":
        parts.push(...record(ino++, path, S_IFDIR | (e.mode ?? 0o755), Buffer.alloc(0)));
        break;
      case "file":
        parts.push(...record(ino++, path, S_IFREG | (e.mode ?? 0o644), e.data));
        break;
      case "symlink":
        parts.push(...record(ino++, path, S_IFLNK | 0o777, Buffer.from(e.target, "utf8")));
        break;
      case "chardev":
        parts.push(
          ...record(ino++, path, S_IFCHR | (e.mode ?? 0o600), Buffer.alloc(0), {
            major: e.major,
            minor: e.minor,
          }),
        );
        break;
    }
  }
  parts.push(...record(0, "TRAILER!!!", 0, Buffer.alloc(0)));
  const body = Buffer.concat(parts);
  // Pad the archive to a 512-byte boundary like GNU cpio does.
  return Buffer.concat([body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
}

/** Adds "dir" entries for every missing parent of the given paths, keeping order stable. */
export function withParentDirs(entries: readonly CpioEntry[]): CpioEntry[] {
  const out: CpioEntry[] = [];
  const have = new Set(entries.filter((e) => e.kind === "dir").map((e) => e.path.replace(/^\/+/, "")));
  for (const e of entries) {
    const parts = e.path.replace(/^\/+/, "").split("/");
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      if (!have.has(dir)) {
        have.add(dir);
        out.push({ kind: "dir", path: dir });
      }
    }
    out.push(e);
  }
  return out;
}
