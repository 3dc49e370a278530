/**
 * `npm run demo`: the main job, end to end, on a virtual FAT32 stick read by the real Linux
 * vfat driver (a QEMU guest with Debian's kernel). Joseph's home is mounted from the stick at
 * "the college", he works, the stick is carried to "the library" (a second, fresh guest), and
 * everything is there; finally the stick is looked at the way Windows would see it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { runInVm } from "../microvm/index.js";
import { fsckFat, makeFat32Stick, mdir, mmd } from "../sticks/index.js";

const root = resolve(fileURLToPath(import.meta.url), "../../../..");
const cli = join(root, "dist/src/cli/main.js");

/** Mount the stick with vfat as a desktop would, then the pershome layer over a home. */
const mountHome = `
set -e
mkdir -p /media/stick /home/joseph
mount -t vfat -o utf8,shortname=mixed,flush,nosuid,nodev /dev/sda /media/stick
node ${cli} mount /media/stick/pershome /home/joseph
cd /home/joseph
`;
const unmountHome = `
cd /
node ${cli} umount /home/joseph
umount /media/stick
`;

const atCollege = `${mountHome}
echo '== at the college: Joseph writes his report and sets up his home'
mkdir -p Documents .ssh
printf 'My report, chapter 1\\n' > Documents/report.odt
printf 'secret key\\n' > .ssh/id_ed25519 && chmod 600 .ssh/id_ed25519
ln -s Documents/report.odt latest-report
printf 'what: why?\\n' > 'notes: draft?.txt'
printf 'all:\\n\\techo big\\n' > Makefile && printf 'all:\\n\\techo small\\n' > makefile
touch -d '2024-02-29 12:34:56.123456789' Documents/report.odt
setfattr -n user.course -v 'History 101' Documents/report.odt
ls -la . Documents .ssh
${unmountHome}`;

const atLibrary = `${mountHome}
echo '== at the library: everything is as Joseph left it'
ls -la . Documents .ssh
fail=0
check() { if eval "$2" >/dev/null 2>&1; then echo "  ok    $1"; else echo "  WRONG $1"; fail=1; fi; }
check 'the report is back'                    '[ "$(cat Documents/report.odt)" = "My report, chapter 1" ]'
check 'the ssh key is still 0600'             '[ "$(stat -c %a .ssh/id_ed25519)" = 600 ]'
check 'latest-report is a symlink to it'      '[ "$(readlink latest-report)" = Documents/report.odt ] && [ "$(cat latest-report)" = "My report, chapter 1" ]'
check 'its time kept to the nanosecond'       '[ "$(stat -c %y Documents/report.odt)" = "2024-02-29 12:34:56.123456789 +0000" ]'
check 'its extended attribute kept'           '[ "$(getfattr --only-values -n user.course Documents/report.odt)" = "History 101" ]'
check 'Makefile and makefile are two files'   'grep -q big Makefile && grep -q small makefile'
check 'a name FAT forbids (notes: draft?.txt)' '[ "$(cat "notes: draft?.txt")" = "what: why?" ]'
${unmountHome}
[ "$fail" = 0 ]`;

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "pershome-demo-"));
  const stick = join(dir, "joseph-stick.img");
  try {
    console.log("== a fresh 64 MiB FAT32 stick with a /pershome folder (nothing else prepared)");
    await makeFat32Stick(stick, 64, "JOSEPH");
    await mmd(stick, "/pershome");
    for (const [place, script] of [
      ["college", atCollege],
      ["library", atLibrary],
    ] as const) {
      console.log(`== booting the ${place} machine (QEMU, Debian kernel, vfat driver)...`);
      const r = await runInVm({
        command: script,
        sticks: [{ image: stick }],
        onOutput: (s) => process.stdout.write(s),
      });
      if (r.exitCode !== 0) {
        console.error(
          `the ${place} step failed (exit ${r.exitCode}): see the lines above (WRONG marks what did not come back)`,
        );
        return 1;
      }
    }
    console.log("== the stick as Windows sees it (mdir):");
    console.log(await mdir(stick, "/pershome"));
    console.log(await mdir(stick, "/pershome/Documents"));
    const fsck = await fsckFat(stick);
    console.log(`== fsck.fat -n: ${fsck.clean ? "clean" : "NOT CLEAN\n" + fsck.output}`);
    if (!fsck.clean) return 1;
    console.log("== Joseph's home came back whole from a stick that is still an ordinary FAT32 stick.");
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
