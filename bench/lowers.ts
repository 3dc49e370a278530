// The lower filesystems: a plain directory on the host's disk, and an exFAT image on a loop device.
import fs from "node:fs";
import { mountExfatOnHost, unmountExfat, type ExfatMount } from "../lab/sticks/index.js";
import { must } from "./sh.js";

export interface Lower {
  name: "plain" | "exfat";
  /** A directory on the lower filesystem where runs make their folders. */
  root: string;
  close(): Promise<void>;
}

export async function makeLower(name: "plain" | "exfat", work: string, sizeGb: number): Promise<Lower> {
  const root = `${work}/${name}-lower`;
  if (name === "plain") {
    fs.rmSync(root, { recursive: true, force: true });
    fs.mkdirSync(root, { recursive: true });
    return { name, root, close: async () => fs.rmSync(root, { recursive: true, force: true }) };
  }
  const image = `${work}/exfat.img`;
  fs.rmSync(image, { force: true });
  await must(`truncate -s ${sizeGb}G '${image}' && mkfs.exfat -L BENCH '${image}' > /dev/null`);
  const m: ExfatMount = await mountExfatOnHost(image, root, { uid: 0, gid: 0 });
  return {
    name,
    root,
    close: async () => {
      await unmountExfat(m);
      fs.rmSync(image, { force: true });
    },
  };
}
