// The guest console, capped, for every VMM. The guest is untrusted and its serial console is a
// byte stream it controls (a root process can write /dev/console in a loop, sysrq dumps 100s of
// KiB at a time), so no VMM writes it to a file itself (QEMU's `-chardev file`, Cloud Hypervisor's
// `serial: File` grow without limit). The bytes reach this sink instead, by a unix socket the VMM
// connects to (QEMU's serial chardev) or by the VMM's stdout pipe (Cloud Hypervisor `serial: Tty`,
// Firecracker), and go to console.log, which is rotated to console.log.1 when it reaches its cap:
// at most two files of `maxBytes` each per VM. While a write is in progress the stream is paused,
// so a guest that prints faster than the disk takes it is slowed down by the VMM's serial flow
// control (a blocked socket or pipe), never buffered in this process.
import { link, open, rename, rm, type FileHandle } from "node:fs/promises";
import net from "node:net";
import type { Readable } from "node:stream";
import { KataError } from "../util/errors.js";

/** Default cap of console.log (and of console.log.1). */
export const defaultConsoleLogMaxBytes = 1 << 20;

export class ConsoleLog {
  /** Bytes received from the VMM since start (the files hold at most the last 2 x maxBytes). */
  bytesReceived = 0;
  private file: FileHandle | undefined;
  private fileBytes = 0;
  private source: Readable | undefined;
  private server: net.Server | undefined;
  private socketPath: string | undefined;
  private writing: Promise<void> = Promise.resolve();
  private readonly ended: Promise<void>;
  private closing: Promise<void> | undefined;
  private resolveEnded!: () => void;

  private constructor(
    readonly logPath: string,
    private readonly maxBytes: number,
  ) {
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
  }

  /** Create an empty log file; the bytes come from attach() or listen(). */
  static async create(logPath: string, maxBytes = defaultConsoleLogMaxBytes): Promise<ConsoleLog> {
    if (!Number.isInteger(maxBytes) || maxBytes < 4096) {
      throw new KataError("INVALID_ARGUMENT", `console log cap must be an integer of at least 4096 bytes, got ${maxBytes}`);
    }
    const log = new ConsoleLog(logPath, maxBytes);
    try {
      log.file = await open(logPath, "w", 0o600);
    } catch (err) {
      throw new KataError("INTERNAL", `cannot create console log ${logPath}`, { cause: err });
    }
    return log;
  }

  /** A log fed by the first connection to socketPath (listening before the VMM starts, so no early line is lost). */
  static async listen(socketPath: string, logPath: string, maxBytes = defaultConsoleLogMaxBytes): Promise<ConsoleLog> {
    const log = await ConsoleLog.create(logPath, maxBytes);
    try {
      await log.listen(socketPath);
    } catch (err) {
      await log.close(0);
      throw err;
    }
    return log;
  }

  /** Take the console from the first connection to socketPath; nothing else has any business there. */
  async listen(socketPath: string): Promise<void> {
    const server = net.createServer((sock) => {
      if (this.source !== undefined) {
        sock.destroy();
        return;
      }
      sock.on("error", () => undefined);
      this.attach(sock);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(socketPath, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.server = server;
    this.socketPath = socketPath;
  }

  /** Take the console from a stream (the VMM's stdout pipe, or the VMM's socket connection). */
  attach(stream: Readable): void {
    if (this.source !== undefined) throw new KataError("INTERNAL", `console log ${this.logPath} already has a source`);
    this.source = stream;
    stream.on("data", (chunk: Buffer) => this.onData(stream, chunk));
    stream.on("error", () => undefined);
    stream.once("close", () => {
      void this.writing.then(() => this.resolveEnded());
    });
  }

  private onData(stream: Readable, chunk: Buffer): void {
    this.bytesReceived += chunk.length;
    stream.pause();
    this.writing = this.writing
      .then(() => this.append(chunk))
      .catch(() => undefined) // a full disk loses console lines, never the VM
      .finally(() => {
        if (!stream.destroyed) stream.resume();
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

  // console.log never goes missing, not even for a moment: a reader (an operator's `tail`, a
  // test polling for the last line) sees the full old file or the fresh one. The old file gets its
  // second name by a hard link and the fresh file replaces console.log by rename, both atomic.
  private async rotate(): Promise<void> {
    const fresh = `${this.logPath}.next`;
    const previous = `${this.logPath}.1`;
    const next = await open(fresh, "w", 0o600);
    try {
      await rm(`${previous}.next`, { force: true });
      await link(this.logPath, `${previous}.next`);
      await rename(`${previous}.next`, previous);
      await rename(fresh, this.logPath);
    } catch (err) {
      await next.close().catch(() => undefined);
      await rm(fresh, { force: true });
      await rm(`${previous}.next`, { force: true });
      throw err;
    }
    await this.file?.close();
    this.file = next;
    this.fileBytes = 0;
  }

  /**
   * Wait (at most timeoutMs) for the VMM's end of the stream and the last writes, then close
   * everything. Call after the VMM exited so the console's last lines reach the file.
   */
  close(timeoutMs = 1000): Promise<void> {
    this.closing ??= this.doClose(timeoutMs);
    return this.closing;
  }

  private async doClose(timeoutMs: number): Promise<void> {
    if (this.source !== undefined) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.ended, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
      this.source.destroy();
    }
    const server = this.server;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
    await this.writing;
    await this.file?.close().catch(() => undefined);
    this.file = undefined;
    if (this.socketPath !== undefined) await rm(this.socketPath, { force: true });
  }
}
