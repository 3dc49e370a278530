// Virtual USB sticks for the lab: make FAT32/exFAT images, look inside them from the host with
// mtools, check them with fsck, and mount exFAT on the host through exfat-fuse.
export { fsckFat, type FsckResult, makeFat32Stick } from "./fat.js";
export {
  type ExfatMount,
  type ExfatMountOptions,
  fsckExfat,
  makeExfatStick,
  mountExfatOnHost,
  unmountExfat,
} from "./exfat.js";
export { mcopyFrom, mcopyTo, mdir, mdirNames, mexists, mmd, mtype } from "./mtools.js";
