import { setWorldConstructor, World, type IWorldOptions } from "@cucumber/cucumber";
import type { Lab } from "../../lab/ltsp/lab.js";
import type { Stick } from "../../lab/ltsp/stick.js";

/** What one login printed: the PAM messages before the shell ran, then the commands' output. */
export interface SessionResult {
  user: string;
  machine: string;
  rc: number;
  messages: string;
  homeFsType: string;
  output: string;
}

export class LabWorld extends World {
  /** Each student's stick, by user name. */
  readonly sticks = new Map<string, Stick>();
  last: SessionResult | undefined;
  /** Sessions that ran side by side. */
  parallel: SessionResult[] = [];
  /** Sessions started in the background, by user. */
  readonly running = new Map<string, Promise<unknown>>();

  constructor(options: IWorldOptions) {
    super(options);
  }

  get lab(): Lab {
    return sharedLab();
  }

  stickOf(user: string): Stick {
    const s = this.sticks.get(user);
    if (!s)
      throw new Error(
        `${user} has no stick in this scenario (a "Given ${user} has a new … stick" step is missing)`,
      );
    return s;
  }

  lastSession(): SessionResult {
    if (!this.last) throw new Error("no login happened yet in this scenario");
    return this.last;
  }
}

let lab: Lab | undefined;

export function setSharedLab(l: Lab | undefined): void {
  lab = l;
}

export function sharedLab(): Lab {
  if (!lab) throw new Error("the lab is not up (BeforeAll failed; see above)");
  return lab;
}

setWorldConstructor(LabWorld);
