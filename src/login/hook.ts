#!/usr/bin/env node
/**
 * The login hook, run by pam_exec (through bin/pershome-pam-hook) at session open and close:
 * PAM_USER, PAM_TYPE, PAM_SERVICE (and PAM_TTY, PAM_RHOST) come from the environment. It always
 * exits 0: a problem means a normal home and a message, never a refused login.
 *
 * The same program runs the helpers it starts:
 *   hook.js --watch USER --generation G   the stick watcher of one mount
 *   hook.js --finish USER                 the bounded wait after the last logout
 *   hook.js --reset USER                  (admin) unmount a user's stick home now
 * and takes --config FILE (default /etc/pershome/pershome.conf) in every role.
 */
import { parseArgs } from "node:util";
import { DEFAULT_CONFIG_FILE, loadConfig } from "./config.js";
import { Journal } from "./journal.js";
import { UNIT_STATE_DIR } from "./layer-daemon.js";
import { processId } from "./processes.js";
import { type Context, closeSession, finishLogout, openSession, resetUser } from "./session.js";
import { useSystemd } from "./systemd.js";
import { runWatcher } from "./watch.js";

async function main(argv: string[]): Promise<number> {
  const t0 = Date.now();
  const { values } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: false,
    options: {
      config: { type: "string" },
      watch: { type: "string" },
      generation: { type: "string" },
      finish: { type: "string" },
      reset: { type: "string" },
    },
  });
  const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
  const configFile = str(values.config) ?? DEFAULT_CONFIG_FILE;
  const { value: cfg, problems } = loadConfig(configFile);
  const watch = str(values.watch);
  const finish = str(values.finish);
  const reset = str(values.reset);
  const pamType = process.env.PAM_TYPE ?? "";
  const role = watch
    ? "watch"
    : finish
      ? "logout-wait"
      : reset
        ? "reset"
        : pamType === "open_session"
          ? "open"
          : pamType === "close_session"
            ? "close"
            : "hook";
  const journal = new Journal(cfg, role);
  for (const p of problems) journal.warn(p);
  let systemd = useSystemd(cfg.systemd);
  if (systemd && cfg.stateDir !== UNIT_STATE_DIR) {
    journal.warn(
      `state_dir is ${cfg.stateDir}, but pershome@.service expects ${UNIT_STATE_DIR}: starting the layer directly`,
    );
    systemd = false;
  }
  const ctx: Context = { cfg, journal, configFile, systemd };
  try {
    if ((process.getuid?.() ?? 0) !== 0) {
      journal.warn(
        `running as uid ${process.getuid?.()}, not root: nothing done (the PAM line needs pam_exec's "seteuid" and a root-run application)`,
      );
      return 0;
    }
    if (watch) await runWatcher(cfg, journal, watch, str(values.generation) ?? "");
    else if (finish) await finishLogout(ctx, finish, Date.now() + cfg.logoutWait * 1000);
    else if (reset) await resetUser(ctx, reset);
    else {
      const user = process.env.PAM_USER ?? "";
      const req = {
        user,
        service: process.env.PAM_SERVICE ?? "",
        tty: process.env.PAM_TTY ?? "",
        rhost: process.env.PAM_RHOST ?? "",
        // pam_exec forks the application and our shim execs node: our parent is the application.
        app: processId(process.ppid),
      };
      if (!user) journal.warn(`PAM_TYPE "${pamType}" without PAM_USER; nothing done`);
      else if (pamType === "open_session") await openSession(ctx, req, t0);
      else if (pamType === "close_session") await closeSession(ctx, req, t0);
      else journal.info(`PAM_TYPE "${pamType}" for ${user}: only session open/close do anything`);
    }
  } catch (err) {
    journal.error(`unexpected error: ${(err as Error)?.stack ?? String(err)}`);
  } finally {
    await journal.close();
  }
  return 0;
}

// Exit explicitly once done: a hung statfs on a dead stick must not keep the login waiting.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  () => process.exit(0),
);
