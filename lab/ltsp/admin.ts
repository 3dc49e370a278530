import type { Machine } from "./machine.js";

/** A lab user's password: the name itself (images/scripts/lab-users, set on the LTSP server). */
export const labPassword = (user: string): string => user;

/** The students a lab admin opted in (one user a line, as in the field). */
export const LAB_STUDENTS = ["joseph", "amina"];

/**
 * What a lab admin does once to the client image after installing the package: turn the PAM
 * profile on (it ships off). The list of students who keep their home on a stick is the server's
 * /etc/ltsp/persistent_homes, which reaches every client in ltsp.img (images/server/).
 */
export async function adminSetup(m: Machine, students = LAB_STUDENTS): Promise<void> {
  await m.succeed("pam-auth-update --enable pershome");
  await m.succeed("grep -q pershome-pam-hook /etc/pam.d/common-session");
  // An emulated client runs 10-50 times slower than a real one (TCG, two shared cores): Node's
  // start alone can take 15 s. An admin of very slow machines would raise the limit the same way.
  await m.succeed(
    "sed -i 's/^#\\?mount_timeout *=.*/mount_timeout = 120/' /etc/pershome/pershome.conf && grep -q '^mount_timeout = 120' /etc/pershome/pershome.conf",
  );
  // what LTSP's init did with ltsp.img: the server's list, the server's users, pamltsp
  const list = await m.succeed("cat /etc/ltsp/persistent_homes");
  for (const s of students)
    if (!list.split("\n").includes(s))
      throw new Error(`${s} is not in the client's /etc/ltsp/persistent_homes:\n${list}`);
  await m.succeed(`getent passwd ${students.join(" ")}`);
  await m.succeed("grep -q pamltsp /etc/pam.d/common-auth");
}
