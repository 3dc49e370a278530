/**
 * The machine's block devices as lsblk (udev's view) and blkid describe them. Pure parsing:
 * the login hook runs the commands asynchronously, the stick tools synchronously, both read
 * their output here so a stick is seen the same way by both.
 */

export interface BlockDevice {
  path: string;
  /** the disk a partition is on */
  parent: string | null;
  /** "disk", "part", "loop", "rom", … */
  type: string;
  /** the device or the disk it is on is removable or hot-pluggable (or on USB) */
  removable: boolean;
  /** the device or its disk is on USB */
  usb: boolean;
  /** the transport of the device or of its disk ("usb", "sata", "nvme", "") */
  tran: string;
  /** lower case; "" when udev has not recorded it (containers, early boot: ask blkid) */
  fstype: string;
  label: string;
  uuid: string;
  size: number;
  majorMinor: string | null;
  /** the GPT/MBR partition type ("c12a7328-…" is an EFI system partition) */
  partType: string;
  mountpoint: string | null;
}

/** lsblk's arguments for the JSON parseLsblk reads: flat list, sizes in bytes, full paths. */
export const LSBLK_ARGS = [
  "-J",
  "-l",
  "-b",
  "-p",
  "-o",
  "PATH,PKNAME,TYPE,RM,HOTPLUG,TRAN,FSTYPE,LABEL,UUID,SIZE,MAJ:MIN,PARTTYPE,MOUNTPOINT",
];

export const EFI_SYSTEM_PARTITION = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";

interface LsblkRow {
  path?: string;
  pkname?: string | null;
  type?: string;
  rm?: boolean | string | null;
  hotplug?: boolean | string | null;
  tran?: string | null;
  fstype?: string | null;
  label?: string | null;
  uuid?: string | null;
  size?: number | string | null;
  "maj:min"?: string | null;
  parttype?: string | null;
  mountpoint?: string | null;
  children?: LsblkRow[];
}

// Older lsblk (util-linux < 2.33) prints booleans as "0"/"1".
const truthy = (v: unknown): boolean => v === true || v === "1" || v === 1;

/** Rows of lsblk -J, flat (-l) or as a tree (children), in lsblk's order. */
function flatten(rows: LsblkRow[], parent: string | null, out: LsblkRow[] = []): LsblkRow[] {
  for (const r of rows) {
    out.push(r.pkname === undefined && parent ? { ...r, pkname: parent } : r);
    if (r.children) flatten(r.children, r.path ?? null, out);
  }
  return out;
}

/** Turns `lsblk ${LSBLK_ARGS}` output into devices. Throws on output that is not lsblk's JSON. */
export function parseLsblk(json: string): BlockDevice[] {
  const top = (JSON.parse(json) as { blockdevices?: LsblkRow[] }).blockdevices ?? [];
  const rows = flatten(top, null).filter((r) => typeof r.path === "string" && r.path !== "");
  const byPath = new Map(rows.map((r) => [r.path!, r]));
  // The kernel flags only the disk as removable, and TRAN is the disk's: a partition inherits them.
  return rows.map((r) => {
    let removable = truthy(r.rm) || truthy(r.hotplug);
    let tran = r.tran ?? "";
    for (
      let p = r.pkname ? byPath.get(r.pkname) : undefined, n = 0;
      p && n < 8;
      p = p.pkname ? byPath.get(p.pkname) : undefined, n++
    ) {
      removable ||= truthy(p.rm) || truthy(p.hotplug);
      tran ||= p.tran ?? "";
    }
    return {
      path: r.path!,
      parent: r.pkname ?? null,
      type: r.type ?? "",
      removable: removable || tran === "usb",
      usb: tran === "usb",
      tran,
      fstype: (r.fstype ?? "").toLowerCase(),
      label: r.label ?? "",
      uuid: r.uuid ?? "",
      size: Number(r.size ?? 0),
      majorMinor: r["maj:min"] ?? null,
      partType: (r.parttype ?? "").toLowerCase(),
      mountpoint: r.mountpoint ?? null,
    };
  });
}

/** A device lsblk does not list (an admin's explicit path): nothing known but its path. */
export function unknownDevice(path: string): BlockDevice {
  return {
    path,
    parent: null,
    type: "",
    removable: false,
    usb: false,
    tran: "",
    fstype: "",
    label: "",
    uuid: "",
    size: 0,
    majorMinor: null,
    partType: "",
    mountpoint: null,
  };
}

/** blkid's low-level probe of one device, for where udev has not recorded the filesystem. */
export const blkidArgs = (device: string): string[] => ["-p", "-o", "export", "--", device];

/** Reads `blkid ${blkidArgs(dev)}` output; "" for what it did not say. */
export function parseBlkidExport(text: string): { fstype: string; label: string; uuid: string } {
  const get = (k: string): string => new RegExp(`^${k}=(.*)$`, "m").exec(text)?.[1] ?? "";
  return { fstype: get("TYPE").toLowerCase(), label: get("LABEL"), uuid: get("UUID") };
}
