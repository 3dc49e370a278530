// The stick tools' pure pieces: choosing candidate sticks from lsblk, reading getfattr dumps,
// the progress bar's words and numbers.

import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { parseGetfattr } from "../../src/sticktools/copy-tree.js";
import { candidatesFromLsblk } from "../../src/sticktools/find-sticks.js";
import { Progress } from "../../src/sticktools/progress.js";
import { EFI_SYSTEM_PARTITION, parseLsblk } from "../../src/system/block-devices.js";

const LSBLK = JSON.stringify({
  blockdevices: [
    {
      path: "/dev/nvme0n1",
      pkname: null,
      type: "disk",
      rm: false,
      hotplug: false,
      tran: "nvme",
      fstype: null,
      label: null,
      size: 512e9,
      parttype: null,
      mountpoint: null,
    },
    {
      path: "/dev/nvme0n1p1",
      pkname: "/dev/nvme0n1",
      type: "part",
      rm: false,
      hotplug: false,
      tran: null,
      fstype: "vfat",
      label: "EFI",
      size: 5e8,
      parttype: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
      mountpoint: "/boot/efi",
    },
    {
      path: "/dev/nvme0n1p2",
      pkname: "/dev/nvme0n1",
      type: "part",
      rm: false,
      hotplug: false,
      tran: null,
      fstype: "ext4",
      label: null,
      size: 5e11,
      parttype: null,
      mountpoint: "/",
    },
    {
      path: "/dev/sdb",
      pkname: null,
      type: "disk",
      rm: true,
      hotplug: true,
      tran: "usb",
      fstype: null,
      label: null,
      size: 16e9,
      parttype: null,
      mountpoint: null,
    },
    {
      path: "/dev/sdb1",
      pkname: "/dev/sdb",
      type: "part",
      rm: false,
      hotplug: false,
      tran: null,
      fstype: "exfat",
      label: "JOSEPH",
      size: 16e9,
      parttype: "0x7",
      mountpoint: "/media/joseph/JOSEPH",
    },
    {
      path: "/dev/loop3",
      pkname: null,
      type: "loop",
      rm: false,
      hotplug: false,
      tran: null,
      fstype: null,
      label: null,
      size: 64e6,
      parttype: null,
      mountpoint: null,
    },
    {
      path: "/dev/sdc1",
      pkname: null,
      type: "part",
      rm: false,
      hotplug: false,
      tran: "sata",
      fstype: "ntfs",
      label: "WIN",
      size: 1e12,
      parttype: null,
      mountpoint: null,
    },
  ],
});

describe("candidate sticks from lsblk", () => {
  it("keeps FAT32/exFAT only, USB first, never the EFI partition; asks blkid where udev knows nothing", () => {
    const probed: string[] = [];
    const list = candidatesFromLsblk(
      LSBLK,
      (dev) => {
        probed.push(dev);
        return dev === "/dev/loop3" ? { type: "vfat", label: "LAB" } : { type: "", label: "" };
      },
      () => null,
    );
    expect(list.map((c) => c.device)).toEqual(["/dev/sdb1", "/dev/loop3"]);
    expect(list[0]).toMatchObject({
      fstype: "exfat",
      label: "JOSEPH",
      usb: true,
      removable: true,
      mountpoint: "/media/joseph/JOSEPH",
    });
    expect(list[1]).toMatchObject({ fstype: "vfat", label: "LAB", usb: false });
    expect(probed).toContain("/dev/loop3");
    expect(probed).not.toContain("/dev/sdb1");
  });
});

describe("lsblk's two shapes", () => {
  it("finds the partition of a partitioned stick in lsblk's tree output as in its flat list", () => {
    // A stick as sold: a USB disk with one FAT32 partition. Without -l lsblk nests partitions
    // under their disk ("children"); an earlier reader looked at the top level only and saw none.
    const stick = { path: "/dev/sdc", pkname: null, type: "disk", rm: true, hotplug: true, tran: "usb" };
    const part = { path: "/dev/sdc1", pkname: "/dev/sdc", type: "part", rm: false, hotplug: false };
    const fat = { fstype: "vfat", label: "AMINA", size: 8e9, mountpoint: null };
    const flat = JSON.stringify({ blockdevices: [stick, { ...part, ...fat }] });
    const tree = JSON.stringify({
      blockdevices: [{ ...stick, children: [{ ...part, ...fat, pkname: undefined }] }],
    });
    for (const json of [flat, tree]) {
      const list = candidatesFromLsblk(
        json,
        () => ({ type: "", label: "" }),
        () => null,
      );
      expect(list).toEqual([
        expect.objectContaining({
          device: "/dev/sdc1",
          fstype: "vfat",
          label: "AMINA",
          usb: true,
          removable: true,
        }),
      ]);
    }
  });

  it("gives the login hook and the stick tools the same view of a device", () => {
    const devs = parseLsblk(LSBLK);
    const sdb1 = devs.find((d) => d.path === "/dev/sdb1");
    expect(sdb1).toMatchObject({ parent: "/dev/sdb", usb: true, removable: true, fstype: "exfat" });
    expect(devs.find((d) => d.path === "/dev/nvme0n1p1")?.partType).toBe(EFI_SYSTEM_PARTITION);
    expect(() => parseLsblk("lsblk: not json")).toThrow();
  });
});

describe("getfattr dumps", () => {
  it("reads names with escapes, base64 and hex values", () => {
    const out = Buffer.from(
      '# file: /tmp/a b\\012c\nuser.color=0sYmx1ZQ==\nuser.hex=0x00ff\n\n# file: /tmp/caf\\303\\251\nuser.t="plain"\n\n',
      "latin1",
    );
    const m = parseGetfattr(out);
    expect([...m.keys()]).toEqual(["/tmp/a b\nc", Buffer.from("/tmp/café", "utf8").toString("latin1")]);
    expect(m.get("/tmp/a b\nc")!.get("user.color")!.toString()).toBe("blue");
    expect([...m.get("/tmp/a b\nc")!.get("user.hex")!]).toEqual([0, 255]);
  });
});

describe("progress", () => {
  it("says bytes, files and time left, as a bar on a terminal and as plain lines otherwise", () => {
    let t = 0;
    let text = "";
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        text += chunk.toString();
        cb();
      },
    });
    const p = new Progress("copying", 100 * 1024 * 1024, 10, {
      stream: sink,
      tty: false,
      lineEvery: 5,
      now: () => t,
    });
    t = 10_000;
    p.addBytes(50 * 1024 * 1024);
    for (let i = 0; i < 5; i++) p.addFile("f");
    expect(p.fraction()).toBeCloseTo(0.5);
    expect(p.secondsLeft()).toBeCloseTo(10);
    expect(text).toContain("copying: 0/10 files, 50.0 MiB of 100 MiB (35%), about 19s left"); // one plain line per 5 s
    expect(p.summary()).toBe("copying: 5/10 files, 50.0 MiB of 100 MiB (50%), about 10s left");
    expect(p.bar(10)).toMatch(
      /^copying \[#####-----\] {2}50% {2}50\.0 MiB\/100 MiB {2}5\/10 files {2}10s left/,
    );
    p.done();
    expect(text.trim().split("\n").pop()).toBe(p.summary());
  });
});
