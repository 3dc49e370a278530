/**
 * The login integration's log: every decision, one line each, tagged with the user. Lines go to
 * syslog/the journal through one `logger -t pershome` process fed on stdin, and to log_file when
 * set (or /var/log/pershome.log when the machine has no syslog socket). Never to stdout/stderr:
 * under pam_exec those reach the user.
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import type { LoginConfig } from "./config.js";
import { systemEnv } from "./run.js";

type Level = "info" | "warn" | "error";
// daemon facility (3) * 8 + severity
const PRIO: Record<Level, number> = { info: 30, warn: 28, error: 27 };
const FALLBACK_FILE = "/var/log/pershome.log";

export class Journal {
  private logger: ChildProcess | null = null;
  private loggerFailed = false;
  private readonly file: string;
  private readonly lines: string[] = [];
  /** the user (and later the stick) every line is about */
  context = "";

  constructor(
    private readonly cfg: Pick<LoginConfig, "logFile" | "syslog">,
    private readonly role: string,
  ) {
    const haveSyslog = cfg.syslog && fs.existsSync("/dev/log");
    this.file = cfg.logFile || (haveSyslog ? "" : FALLBACK_FILE);
    if (!haveSyslog) this.loggerFailed = true;
  }

  info(msg: string): void {
    this.write("info", msg);
  }
  warn(msg: string): void {
    this.write("warn", msg);
  }
  error(msg: string): void {
    this.write("error", msg);
  }

  /** Everything logged so far (for tests and for the hook's own summary). */
  history(): readonly string[] {
    return this.lines;
  }

  private write(level: Level, msg: string): void {
    const text =
      `${this.role}${this.context ? ` ${this.context}` : ""}: ${level === "info" ? "" : level + ": "}${msg}`.replace(
        /\n/g,
        " / ",
      );
    this.lines.push(text);
    if (this.file) {
      try {
        fs.appendFileSync(this.file, `${new Date().toISOString()} pershome[${process.pid}] ${text}\n`, {
          mode: 0o640,
        });
      } catch {
        /* the log must never stop a login */
      }
    }
    if (!this.loggerFailed) {
      try {
        this.logger ??= this.startLogger();
        this.logger.stdin?.write(`<${PRIO[level]}>${text}\n`);
      } catch {
        this.loggerFailed = true;
      }
    }
  }

  private startLogger(): ChildProcess {
    const p = spawn("logger", ["-t", "pershome", `--id=${process.pid}`, "--prio-prefix"], {
      stdio: ["pipe", "ignore", "ignore"],
      env: systemEnv(),
      cwd: "/",
    });
    p.on("error", () => {
      this.loggerFailed = true;
    });
    p.stdin?.on("error", () => {
      this.loggerFailed = true;
    });
    return p;
  }

  /** Waits (briefly) until syslog has every line. */
  async close(): Promise<void> {
    const p = this.logger;
    this.logger = null;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        p.kill();
        resolve();
      }, 2000);
      p.once("exit", () => {
        clearTimeout(t);
        resolve();
      });
      p.stdin?.end();
    });
  }
}
