import { After, AfterAll, Before, BeforeAll, setDefaultTimeout, Status } from "@cucumber/cucumber";
import { Lab } from "../../lab/ltsp/lab.js";
import { adminSetup } from "../../lab/ltsp/admin.js";
import { type LabWorld, setSharedLab, sharedLab } from "./world.js";

// One lab for the whole run: the server and both clients boot once (BeforeAll), the admin's setup
// is applied, and each client is snapshotted; every scenario then starts from those snapshots.

setDefaultTimeout(5 * 60_000);

export const CLIENTS = ["college", "library"];
let first = true;

BeforeAll({ timeout: 20 * 60_000 }, async function () {
  const lab = await Lab.up({ clients: CLIENTS, logDir: "reports/lab", provision: adminSetup });
  setSharedLab(lab);
});

Before(async function (this: LabWorld) {
  if (first) {
    first = false;
    return;
  }
  await sharedLab().reset();
});

After(async function (this: LabWorld, { result }) {
  if (result?.status !== Status.FAILED) return;
  let lab: Lab;
  try {
    lab = sharedLab();
  } catch {
    return;
  }
  for (const m of lab.clients.values()) {
    this.attach(`--- ${m.name}: console (last lines) ---\n${m.consoleTail(60)}`, "text/plain");
    const journal = await m
      .execute("journalctl -b --no-pager -o short-monotonic | grep -i pershome | tail -n 150", 20_000)
      .catch((e: unknown) => ({ rc: -1, output: String(e) }));
    this.attach(`--- ${m.name}: pershome's log ---\n${journal.output}`, "text/plain");
  }
});

AfterAll(function () {
  try {
    sharedLab().down();
  } catch {
    /* never came up */
  }
  setSharedLab(undefined);
});
