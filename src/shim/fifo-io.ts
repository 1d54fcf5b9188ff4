// A process's stdio between containerd's FIFOs and the sandbox layer's streams.
//  - stdout/stderr FIFOs are opened read-write: that never blocks, and the shim keeping a read end
//    means the container never gets SIGPIPE/EPIPE if containerd goes away (it gets backpressure).
//  - stdin is opened read-only with a blocking open (on the libuv thread pool) so we see EOF only
//    when containerd closes its write end, not merely because it has not opened it yet.
// `drained()` resolves when output has been copied to the FIFOs, so an exit is reported after the
// last line of output, not before.
import { close as closeFd, constants, open as openCb } from "node:fs";
import { promisify } from "node:util";
import net from "node:net";
import { finished, type Readable, type Writable } from "node:stream";
import type { Logger } from "../util/log.js";
import type { PodProcess, StdioPaths } from "./pod-port.js";

// Raw fds, not FileHandles: net.Socket owns the fd, and a FileHandle would close it on GC.
const open = promisify(openCb);

/**
 * Holds output FIFOs open beside this process (the node-level server's keeper): while one holds a
 * FIFO's write end, containerd does not see EOF on it if this process dies, and the output of a
 * process taken over by the next server goes on into the same CRI log. Released when the process's
 * output ended, so containerd then sees EOF as before.
 */
export interface FifoHolder {
  hold(path: string): void;
  release(path: string): void;
}

export class FifoIo {
  private readonly outputs: Promise<void>[] = [];
  private readonly sockets: net.Socket[] = [];
  private stdinSource: net.Socket | undefined;
  private closed = false;

  private readonly held = new Set<string>();

  constructor(
    private readonly paths: StdioPaths,
    private readonly log: Logger,
    private readonly holder?: FifoHolder,
  ) {}

  /** Connect the process's streams to the FIFOs. */
  async attach(proc: Pick<PodProcess, "stdin" | "stdout" | "stderr">): Promise<void> {
    if (proc.stdout !== undefined && this.paths.stdout !== "") await this.pumpOut(proc.stdout, this.paths.stdout);
    if (proc.stderr !== undefined && this.paths.stderr !== "") await this.pumpOut(proc.stderr, this.paths.stderr);
    if (proc.stdin !== undefined && this.paths.stdin !== "") this.pumpIn(proc.stdin, this.paths.stdin);
  }

  private async pumpOut(source: Readable, path: string): Promise<void> {
    const fd = await open(path, constants.O_RDWR | constants.O_NONBLOCK);
    const sink = new net.Socket({ fd, readable: false, writable: true });
    this.sockets.push(sink);
    sink.on("error", (err) => this.log.warn({ err, path }, "writing to output fifo failed"));
    source.pipe(sink);
    if (this.holder !== undefined && !this.held.has(path)) {
      this.held.add(path);
      this.holder.hold(path);
      // Once this end is closed too, containerd sees the EOF the output's end means.
      sink.once("close", () => this.release(path));
    }
    this.outputs.push(
      new Promise<void>((resolve) => {
        finished(source, () => resolve());
      }),
    );
  }

  private release(path: string): void {
    if (this.held.delete(path)) this.holder?.release(path);
  }

  private pumpIn(sink: Writable, path: string): void {
    // Not awaited: the open completes when containerd opens its write end.
    open(path, constants.O_RDONLY).then(
      (fd) => {
        if (this.closed) {
          closeFd(fd, () => undefined);
          return;
        }
        const source = new net.Socket({ fd, readable: true, writable: false });
        this.stdinSource = source;
        source.on("error", (err) => this.log.warn({ err, path }, "reading stdin fifo failed"));
        sink.on("error", (err) => this.log.debug({ err }, "process stdin closed"));
        source.pipe(sink);
      },
      (err: unknown) => this.log.warn({ err, path }, "cannot open stdin fifo"),
    );
  }

  /** Resolves when the process's output streams have ended (or after `timeoutMs`). */
  async drained(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([Promise.all(this.outputs), deadline]);
    clearTimeout(timer);
  }

  /** Stop copying stdin (CloseIO): containerd closed it, the process should see EOF. */
  closeStdin(): void {
    this.stdinSource?.destroy();
    this.stdinSource = undefined;
  }

  /** Flush what is buffered and close every FIFO end we hold. */
  async close(): Promise<void> {
    this.closed = true;
    this.closeStdin();
    try {
      await this.closeOutputs();
    } finally {
      for (const path of [...this.held]) this.release(path);
    }
  }

  private async closeOutputs(): Promise<void> {
    await Promise.all(
      this.sockets.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.destroyed) return resolve();
            s.end(() => resolve());
            setTimeout(() => {
              s.destroy();
              resolve();
            }, 2000).unref();
          }),
      ),
    );
  }
}
