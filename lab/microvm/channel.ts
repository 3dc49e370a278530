import { createServer, type Server, type Socket } from "node:net";
import { type Marker, OutputParser } from "./protocol.js";

/**
 * The host end of the guest's output port: a Unix socket QEMU connects to (chardev socket,
 * client mode) when it starts. Bytes are split into command output and markers (protocol.ts).
 */
export class OutputChannel {
  private readonly server: Server = createServer();
  private conn: Socket | undefined;
  private readonly parser: OutputParser;

  constructor(
    private readonly socketPath: string,
    nonce: string,
    onData: (chunk: Buffer) => void,
    onMarker: (m: Marker) => void,
  ) {
    this.parser = new OutputParser(nonce, onData, onMarker);
    this.server.on("connection", (s) => {
      if (this.conn) {
        s.destroy();
        return;
      }
      this.conn = s;
      s.on("data", (d: Buffer) => this.parser.push(d));
      s.on("error", () => undefined);
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.socketPath, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
  }

  /** Tells the guest its end marker arrived (it powers off on this). */
  ack(): void {
    this.conn?.write("ack\n");
  }

  /** After QEMU exited: takes what is still buffered in the socket, then closes everything. */
  async close(): Promise<void> {
    const c = this.conn;
    if (c && !c.readableEnded && !c.destroyed) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 2000);
        c.once("close", () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    this.parser.flush();
    c?.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
