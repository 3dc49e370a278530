// The output port carries raw bytes: init's messages, then the command's stdout+stderr, with
// marker lines from init in between. A marker is "\x01pershome-<kind>:<nonce>[:<args>]\n"; the
// nonce is random per run, so a command cannot fake one by accident.
//
//   start:<nonce>:<guest uptime s>   the command is about to run (bytes before it are init's)
//   exit:<nonce>:<code>              the command ended; the host answers "ack\n", the guest powers off
//   initfail:<nonce>                 init could not set up the guest (message precedes it)

export type Marker =
  { kind: "start"; guestUptimeS: number } | { kind: "exit"; code: number } | { kind: "initfail" };

const LEAD = 0x01;
const MAX_MARKER = 200;

export class OutputParser {
  private pending = Buffer.alloc(0);
  private readonly prefix: Buffer;

  constructor(
    private readonly nonce: string,
    private readonly onData: (chunk: Buffer) => void,
    private readonly onMarker: (m: Marker) => void,
  ) {
    this.prefix = Buffer.from(`\x01pershome-`);
  }

  push(chunk: Buffer): void {
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    for (;;) {
      const i = buf.indexOf(LEAD);
      if (i < 0) {
        if (buf.length) this.onData(buf);
        return;
      }
      if (i > 0) this.onData(buf.subarray(0, i));
      buf = buf.subarray(i);
      const nl = buf.indexOf(0x0a);
      if (nl < 0) {
        // Could be the start of a marker split across chunks: wait for more, within reason.
        const couldBe =
          buf.length < MAX_MARKER &&
          this.prefix
            .subarray(0, buf.length)
            .equals(buf.subarray(0, Math.min(buf.length, this.prefix.length)));
        if (couldBe) {
          this.pending = Buffer.from(buf);
          return;
        }
        this.onData(buf.subarray(0, 1));
        buf = buf.subarray(1);
        continue;
      }
      const marker = this.parse(buf.subarray(1, nl).toString("latin1"));
      if (marker) {
        this.onMarker(marker);
        buf = buf.subarray(nl + 1);
      } else {
        this.onData(buf.subarray(0, 1));
        buf = buf.subarray(1);
      }
    }
  }

  /** Bytes held back at the end (an unfinished marker-like line) are output after all. */
  flush(): void {
    if (this.pending.length) this.onData(this.pending);
    this.pending = Buffer.alloc(0);
  }

  private parse(line: string): Marker | undefined {
    const parts = line.split(":");
    if (parts[1] !== this.nonce) return undefined;
    switch (parts[0]) {
      case "pershome-start":
        return { kind: "start", guestUptimeS: Number(parts[2] ?? NaN) };
      case "pershome-exit": {
        const code = Number(parts[2]);
        return Number.isInteger(code) ? { kind: "exit", code } : undefined;
      }
      case "pershome-initfail":
        return { kind: "initfail" };
      default:
        return undefined;
    }
  }
}
