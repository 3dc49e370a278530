import type { Machine } from "./machine.js";

/** The students a lab admin opted in (one user a line, as in the field). */
export const LAB_STUDENTS = ["joseph", "amina"];

/**
 * What a lab admin does once to a client after installing the package: turn the PAM profile on
 * (it ships off) and list the students who keep their home on a stick.
 */
export async function adminSetup(m: Machine, students = LAB_STUDENTS): Promise<void> {
  const list = `# students with a home on their USB stick\n${students.join("\n")}\n`;
  await m.succeed("pam-auth-update --enable pershome");
  await m.succeed(`mkdir -p /etc/ltsp && printf '%s' '${list}' > /etc/ltsp/persistent_homes`);
  await m.succeed("grep -q pershome-pam-hook /etc/pam.d/common-session");
}
