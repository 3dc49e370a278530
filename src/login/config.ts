/**
 * The login integration's settings: /etc/pershome/pershome.conf ("key = value" lines) and the
 * LTSP opt-in list /etc/ltsp/persistent_homes (one user a line). Parsing is pure; problems are
 * returned as plain sentences for the log, and a bad value keeps the default.
 */
import fs from "node:fs";

export const DEFAULT_CONFIG_FILE = "/etc/pershome/pershome.conf";

export type OptInMode = "listed" | "everyone" | "nobody";
export type SystemdMode = "auto" | "yes" | "no";

export interface LoginConfig {
  /** listed: users in list_file or with the marker; everyone / nobody: admin-wide */
  optIn: OptInMode;
  listFile: string;
  /** honour ~/.persistent_home in the user's normal home */
  marker: boolean;
  /** users below this uid (root, system accounts) never get a stick home */
  minUid: number;
  /** a fixed folder holding the stick (LTSP5 ltspfs: /media/%u); %u = user name, %U = uid */
  stickPath: string;
  /** only these block devices (or globs) are considered; empty: every removable device */
  stickDevices: string[];
  removableOnly: boolean;
  filesystems: string[];
  stickUmask: number;
  /** extra mount options for the stick */
  stickOptions: string[];
  /** seconds for mounting the stick, and again for the layer to become ready */
  mountTimeout: number;
  lockTimeout: number;
  /** seconds to wait at logout for programs still using the home */
  logoutWait: number;
  logoutInBackground: boolean;
  killLeftovers: boolean;
  /** seconds the layer may take to write everything out after it is unmounted */
  flushTimeout: number;
  watch: boolean;
  watchInterval: number;
  notify: boolean;
  systemd: SystemdMode;
  stateDir: string;
  messageDir: string;
  /** a file to log to as well as syslog ("" = syslog only, or /var/log/pershome.log if there is none) */
  logFile: string;
  syslog: boolean;
}

export const DEFAULTS: Readonly<LoginConfig> = Object.freeze({
  optIn: "listed",
  listFile: "/etc/ltsp/persistent_homes",
  marker: true,
  minUid: 1000,
  stickPath: "",
  stickDevices: [],
  removableOnly: true,
  filesystems: ["vfat", "exfat"],
  stickUmask: 0o077,
  stickOptions: [],
  mountTimeout: 20,
  lockTimeout: 30,
  logoutWait: 30,
  logoutInBackground: true,
  killLeftovers: false,
  flushTimeout: 60,
  watch: true,
  watchInterval: 2,
  notify: true,
  systemd: "auto",
  stateDir: "/run/pershome",
  messageDir: "/run/pershome-notify",
  logFile: "",
  syslog: true,
} satisfies LoginConfig);

export interface Parsed<T> {
  value: T;
  problems: string[];
}

type Setter = (c: LoginConfig, v: string) => string | null;

function bool(key: keyof LoginConfig): Setter {
  return (c, v) => {
    const b = /^(yes|true|on|1)$/i.test(v) ? true : /^(no|false|off|0)$/i.test(v) ? false : null;
    if (b === null) return `"${v}" is not yes or no`;
    (c as unknown as Record<string, unknown>)[key] = b;
    return null;
  };
}

function num(key: keyof LoginConfig, min: number, max: number): Setter {
  return (c, v) => {
    const n = Number(v);
    if (!/^\d+(\.\d+)?$/.test(v) || n < min || n > max) return `"${v}" is not a number from ${min} to ${max}`;
    (c as unknown as Record<string, unknown>)[key] = n;
    return null;
  };
}

function oneOf<K extends keyof LoginConfig>(key: K, allowed: readonly string[]): Setter {
  return (c, v) => {
    if (!allowed.includes(v)) return `"${v}" is not one of: ${allowed.join(", ")}`;
    (c as unknown as Record<string, unknown>)[key] = v;
    return null;
  };
}

function path(key: keyof LoginConfig, allowEmpty: boolean): Setter {
  return (c, v) => {
    if (v === "" && allowEmpty) {
      (c as unknown as Record<string, unknown>)[key] = "";
      return null;
    }
    if (!v.startsWith("/")) return `"${v}" is not an absolute path`;
    (c as unknown as Record<string, unknown>)[key] = v;
    return null;
  };
}

function words(v: string): string[] {
  return v.split(/[\s,]+/).filter((w) => w !== "");
}

const SETTERS: Record<string, Setter> = {
  opt_in: oneOf("optIn", ["listed", "everyone", "nobody"]),
  list_file: path("listFile", false),
  marker: bool("marker"),
  min_uid: num("minUid", 1, 2 ** 31),
  stick_path: path("stickPath", true),
  stick_devices: (c, v) => {
    const list = words(v);
    const bad = list.find((d) => !d.startsWith("/dev/"));
    if (bad) return `"${bad}" is not a device under /dev`;
    c.stickDevices = list;
    return null;
  },
  removable_only: bool("removableOnly"),
  filesystems: (c, v) => {
    const list = words(v).map((w) => w.toLowerCase());
    const bad = list.find((f) => f !== "vfat" && f !== "exfat");
    if (bad || list.length === 0) return `"${v}" must name vfat and/or exfat`;
    c.filesystems = list;
    return null;
  },
  stick_umask: (c, v) => {
    if (!/^0?[0-7]{3}$/.test(v)) return `"${v}" is not an octal umask like 077`;
    c.stickUmask = parseInt(v, 8);
    return null;
  },
  stick_options: (c, v) => {
    const list = words(v);
    // The stick must never carry setuid programs or device files into the machine.
    const bad = list.find((o) => /^(suid|dev|exec)$/.test(o));
    if (bad) return `"${bad}" is not allowed (the stick is always mounted nosuid,nodev)`;
    c.stickOptions = list;
    return null;
  },
  mount_timeout: num("mountTimeout", 1, 600),
  lock_timeout: num("lockTimeout", 1, 600),
  logout_wait: num("logoutWait", 0, 3600),
  logout_in_background: bool("logoutInBackground"),
  kill_leftovers: bool("killLeftovers"),
  flush_timeout: num("flushTimeout", 1, 3600),
  watch: bool("watch"),
  watch_interval: num("watchInterval", 0.2, 600),
  notify: bool("notify"),
  systemd: oneOf("systemd", ["auto", "yes", "no"]),
  state_dir: path("stateDir", false),
  message_dir: path("messageDir", false),
  log_file: path("logFile", true),
  syslog: bool("syslog"),
};

export const CONFIG_KEYS = Object.keys(SETTERS);

/** Parses pershome.conf text. Unknown keys and bad values are reported and ignored. */
export function parseConfig(text: string, source = DEFAULT_CONFIG_FILE): Parsed<LoginConfig> {
  const c: LoginConfig = {
    ...DEFAULTS,
    stickDevices: [],
    filesystems: [...DEFAULTS.filesystems],
    stickOptions: [],
  };
  const problems: string[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/(^|\s)#.*$/, "").trim();
    if (line === "") return;
    const m = /^([A-Za-z_]+)\s*=\s*(.*)$/.exec(line);
    if (!m) {
      problems.push(`${source} line ${i + 1}: "${raw.trim()}" is not "key = value"; ignored`);
      return;
    }
    const key = m[1]!.toLowerCase();
    const value = m[2]!.trim().replace(/^"(.*)"$/, "$1");
    const set = SETTERS[key];
    if (!set) {
      problems.push(`${source} line ${i + 1}: unknown setting "${key}"; ignored`);
      return;
    }
    const why = set(c, value);
    if (why) problems.push(`${source} line ${i + 1}: ${key}: ${why}; keeping the default`);
  });
  return { value: c, problems };
}

/** Reads the config file; a missing file means all defaults. */
export function loadConfig(file = DEFAULT_CONFIG_FILE): Parsed<LoginConfig> {
  let text = "";
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      const p = parseConfig("", file);
      p.problems.push(`cannot read ${file} (${(err as Error).message}); using the defaults`);
      return p;
    }
  }
  return parseConfig(text, file);
}

export interface UserList {
  names: Set<string>;
  uids: Set<number>;
  problems: string[];
}

// Login names as useradd (and LDAP/SSSD, with @domain) make them; a uid is digits only.
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.@-]*\$?$/;

/**
 * Parses /etc/ltsp/persistent_homes: one user a line (login name or numeric uid), "#" starts a
 * comment, blank lines are fine. Anything else is reported with its line number and ignored.
 */
export function parseUserList(text: string, source: string): UserList {
  const out: UserList = { names: new Set(), uids: new Set(), problems: [] };
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/#.*$/, "").trim();
    if (line === "") return;
    if (/^\d+$/.test(line)) {
      out.uids.add(Number(line));
    } else if (NAME.test(line) && line.length <= 256) {
      out.names.add(line);
    } else {
      const shown = JSON.stringify(raw.trim().slice(0, 80));
      const why = /\s/.test(line) ? "more than one word (one user a line)" : "not a user name";
      out.problems.push(`${source} line ${i + 1}: ${shown} is ${why}; line ignored`);
    }
  });
  return out;
}

/** Expands %u (user name), %U (uid) and %% in a path template. */
export function expandPath(template: string, user: string, uid: number): string {
  return template.replace(/%([uU%])/g, (_, k: string) => (k === "u" ? user : k === "U" ? String(uid) : "%"));
}
