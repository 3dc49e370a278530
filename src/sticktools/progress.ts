/**
 * Progress of long work: a bar with bytes, files and time left on a terminal, redrawn at most
 * ten times a second; plain lines every few seconds otherwise (logs, pipes, --json).
 */
import { humanBytes, humanDuration } from "./common.js";

export interface ProgressOptions {
  stream?: NodeJS.WriteStream | NodeJS.WritableStream;
  /** draw a bar (default: the stream is a terminal) */
  tty?: boolean;
  /** seconds between plain lines */
  lineEvery?: number;
  now?: () => number;
}

export class Progress {
  private bytes = 0;
  private files = 0;
  private readonly start: number;
  private lastDraw = 0;
  private lastLine = 0;
  private current = "";
  private readonly stream: NodeJS.WritableStream;
  private readonly tty: boolean;
  private readonly lineEvery: number;
  private readonly now: () => number;
  private drawn = false;

  constructor(
    readonly label: string,
    readonly totalBytes: number,
    readonly totalFiles: number,
    o: ProgressOptions = {},
  ) {
    this.stream = o.stream ?? process.stderr;
    this.tty = o.tty ?? Boolean((this.stream as NodeJS.WriteStream).isTTY);
    this.lineEvery = o.lineEvery ?? 5;
    this.now = o.now ?? (() => Date.now());
    this.start = this.now();
    this.lastLine = this.start;
  }

  /** Fraction done, bytes and files weighted alike (many small files cost time too). */
  fraction(): number {
    const fb = this.totalBytes > 0 ? this.bytes / this.totalBytes : 1;
    const ff = this.totalFiles > 0 ? this.files / this.totalFiles : 1;
    return Math.min(1, this.totalBytes > 0 ? 0.7 * fb + 0.3 * ff : ff);
  }

  secondsLeft(): number {
    const f = this.fraction();
    const elapsed = (this.now() - this.start) / 1000;
    if (f <= 0 || elapsed < 1) return NaN;
    return (elapsed * (1 - f)) / f;
  }

  addBytes(n: number): void {
    this.bytes += n;
    this.tick();
  }

  addFile(name = ""): void {
    this.files++;
    if (name) this.current = name;
    this.tick();
  }

  setCurrent(name: string): void {
    this.current = name;
    this.tick();
  }

  /** The plain-words state: "120/300 files, 12.3 MiB of 27.0 MiB (42%), about 1m 20s left". */
  summary(): string {
    const pct = Math.floor(this.fraction() * 100);
    const left = this.secondsLeft();
    return (
      `${this.label}: ${this.files}/${this.totalFiles} files, ${humanBytes(this.bytes)} of ${humanBytes(this.totalBytes)} (${pct}%)` +
      (Number.isFinite(left) && pct < 100 ? `, about ${humanDuration(left)} left` : "")
    );
  }

  bar(width = 24): string {
    const f = this.fraction();
    const full = Math.round(f * width);
    const left = this.secondsLeft();
    const name = this.current.length > 30 ? "…" + this.current.slice(-29) : this.current;
    return (
      `${this.label} [${"#".repeat(full)}${"-".repeat(width - full)}] ${String(Math.floor(f * 100)).padStart(3)}%  ` +
      `${humanBytes(this.bytes)}/${humanBytes(this.totalBytes)}  ${this.files}/${this.totalFiles} files  ` +
      `${Number.isFinite(left) ? humanDuration(left) + " left" : ""}  ${name}`
    );
  }

  private tick(force = false): void {
    const t = this.now();
    if (this.tty) {
      if (!force && t - this.lastDraw < 100) return;
      this.lastDraw = t;
      const cols = (this.stream as NodeJS.WriteStream).columns || 100;
      this.stream.write(
        "\r" +
          this.bar()
            .slice(0, cols - 1)
            .padEnd(cols - 1),
      );
      this.drawn = true;
    } else if (force || t - this.lastLine >= this.lineEvery * 1000) {
      this.lastLine = t;
      this.stream.write(this.summary() + "\n");
    }
  }

  /** Final state; on a terminal the bar is replaced by a plain line. */
  done(): void {
    if (this.tty) {
      if (this.drawn)
        this.stream.write("\r" + " ".repeat(((this.stream as NodeJS.WriteStream).columns || 100) - 1) + "\r");
      this.stream.write(this.summary() + "\n");
    } else this.tick(true);
  }
}
