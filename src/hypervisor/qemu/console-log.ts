// The guest console, capped. The guest is untrusted and its serial console is a byte stream it
// controls (a root process can write /dev/console in a loop, sysrq dumps 100s of KiB at a time),
// so QEMU must not write it to a file itself: `-chardev file` grows without limit. Instead QEMU
// connects its serial chardev to a unix socket this module listens on, and the bytes go to
// console.log, which is rotated to console.log.1 when it reaches its cap: at most two files of
// `maxBytes` each per VM. While a write is in progress the socket is paused, so a guest that
// prints faster than the disk takes it is slowed down by QEMU's serial flow control, never
// buffered in this process.
import { open, rename, rm, type FileHandle } from "node:fs/promises";
import net from "node:net";
import { KataError } from "../../util/errors.js";

/** Default cap of console.log (and of console.log.1). */
export const defaultConsoleLogMaxBytes = 1 << 20;

export class ConsoleLog {
  /** Bytes received from QEMU since start (the files hold at most the last 2 x maxBytes). */
  bytesReceived = 0;
  private file: FileHandle | undefined;
  private fileBytes = 0;
  private conn: net.Socket | undefined;
  private writing: Promise<void> = Promise.resolve();
  private readonly ended: Promise<void>;
  private closing: Promise<void> | undefined;
  private resolveEnded!: () => void;

  private constructor(
    private readonly server: net.Server,
    readonly socketPath: string,
    readonly logPath: string,
    private readonly maxBytes: number,
  ) {
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
    // The first connection is QEMU's; nothing else has any business here.
    server.on("connection", (sock) => {
      if (this.conn !== undefined) {
        sock.destroy();
        return;
      }
      this.conn = sock;
      sock.on("data", (chunk: Buffer) => this.onData(sock, chunk));
      sock.on("error", () => undefined);
      sock.once("close", () => {
        void this.writing.then(() => this.resolveEnded());
      });
    });
  }

  /** Listen on socketPath (before QEMU starts) and create an empty log file. */
  static async listen(socketPath: string, logPath: string, maxBytes = defaultConsoleLogMaxBytes): Promise<ConsoleLog> {
    if (!Number.isInteger(maxBytes) || maxBytes < 4096) {
      throw new KataError("INVALID_ARGUMENT", `console log cap must be an integer of at least 4096 bytes, got ${maxBytes}`);
    }
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(socketPath, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const log = new ConsoleLog(server, socketPath, logPath, maxBytes);
    try {
      log.file = await open(logPath, "w", 0o600);
    } catch (err) {
      server.close();
      throw new KataError("INTERNAL", `cannot create console log ${logPath}`, { cause: err });
    }
    return log;
  }

  private onData(sock: net.Socket, chunk: Buffer): void {
    this.bytesReceived += chunk.length;
    sock.pause();
    this.writing = this.writing
      .then(() => this.append(chunk))
      .catch(() => undefined) // a full disk loses console lines, never the VM
      .finally(() => {
        if (!sock.destroyed) sock.resume();
      });
  }

  private async append(chunk: Buffer): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      if (this.fileBytes >= this.maxBytes) await this.rotate();
      const n = Math.min(chunk.length - off, this.maxBytes - this.fileBytes);
      await this.file?.write(chunk, off, n);
      this.fileBytes += n;
      off += n;
    }
  }

  private async rotate(): Promise<void> {
    await this.file?.close();
    this.file = undefined;
    await rename(this.logPath, `${this.logPath}.1`);
    this.file = await open(this.logPath, "w", 0o600);
    this.fileBytes = 0;
  }

  /**
   * Wait (at most timeoutMs) for QEMU's end of the stream and the last writes, then close
   * everything. Call after QEMU exited so the console's last lines reach the file.
   */
  close(timeoutMs = 1000): Promise<void> {
    this.closing ??= this.doClose(timeoutMs);
    return this.closing;
  }

  private async doClose(timeoutMs: number): Promise<void> {
    if (this.conn !== undefined) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.ended, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
      this.conn.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.writing;
    await this.file?.close().catch(() => undefined);
    this.file = undefined;
    await rm(this.socketPath, { force: true });
  }
}
