export { S_IFMT, S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFSOCK, TYPE_OF } from "../../format/describe.js";
/** character and block devices: never made, never shown */
export const S_IFCHR_OR_BLK = new Set([0o020000, 0o060000]);
