// The agent's channel on hosts without vsock: a virtio-serial port, found by name under
// /sys/class/virtio-ports/*/name and opened as a plain file (/dev/vportNpM).
//
// A port is not a socket: there is no accept. Reads return 0 (EOF) while no host process is
// connected to the QEMU chardev, and block while one is connected and silent. So one fd serves a
// sequence of host connections: the first bytes after an EOF start a new session (a fresh Duplex
// for the ttRPC server), an EOF ends it, and between sessions the reader polls with a short sleep.
import { closeSync, openSync, read, readdirSync, readFileSync, write } from "node:fs";
import { Duplex } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { KataError } from "../util/errors.js";

const PORTS_DIR = "/sys/class/virtio-ports";
const READ_CHUNK = 64 * 1024;
const IDLE_POLL_MS = 20;

/** The /dev path of the virtio-serial port named `name`, or undefined if there is none. */
export function findVirtioPort(name: string, portsDir = PORTS_DIR): string | undefined {
  let entries: string[];
  try {
    entries = readdirSync(portsDir).sort();
  } catch {
    return undefined;
  }
  for (const entry of entries) {
    const portName = (() => {
      try {
        return readFileSync(`${portsDir}/${entry}/name`, "utf8").trim();
      } catch {
        return undefined;
      }
    })();
    if (portName === name) return `/dev/${entry}`;
  }
  return undefined;
}

/** Wait for the port to show up (the virtio_console driver may still be probing). */
export async function waitForVirtioPort(name: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const path = findVirtioPort(name);
    if (path !== undefined) return path;
    if (Date.now() > deadline) throw new KataError("NOT_FOUND", `no virtio-serial port named ${name} under ${PORTS_DIR} after ${timeoutMs} ms`);
    await sleep(10);
  }
}

function readAsync(fd: number, buf: Buffer): Promise<number> {
  return new Promise((resolve, reject) => read(fd, buf, 0, buf.length, null, (err, n) => (err ? reject(err) : resolve(n))));
}

function writeAll(fd: number, chunk: Buffer, done: (err?: Error | null) => void): void {
  write(fd, chunk, 0, chunk.length, null, (err, n) => {
    if (err) done(err);
    else if (n < chunk.length) writeAll(fd, chunk.subarray(n), done);
    else done();
  });
}

/** One host connection on the port: bytes in until EOF, writes go to the shared fd. */
class PortSession extends Duplex {
  constructor(private readonly fd: number) {
    super({ allowHalfOpen: false });
  }
  override _read(): void {
    // Data is pushed by the port's reader loop.
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    writeAll(this.fd, chunk, done);
  }
}

export class VirtioPort {
  private readonly fd: number;
  private closed = false;

  constructor(readonly path: string) {
    this.fd = openSync(path, "r+");
  }

  /** Call onSession for every host connection until close(). Resolves when the reader stops. */
  async serve(onSession: (stream: Duplex) => void): Promise<void> {
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    let session: PortSession | undefined;
    while (!this.closed) {
      let n: number;
      try {
        n = await readAsync(this.fd, buf);
      } catch (err) {
        if (this.closed) break;
        session?.destroy(err as Error);
        throw new KataError("UNAVAILABLE", `reading ${this.path} failed`, { cause: err });
      }
      if (n > 0) {
        if (session === undefined || session.destroyed) {
          session = new PortSession(this.fd);
          onSession(session);
        }
        session.push(Buffer.from(buf.subarray(0, n)));
      } else if (session !== undefined) {
        session.push(null); // host went away: end this session
        session = undefined;
      } else {
        await sleep(IDLE_POLL_MS); // no host connected yet
      }
    }
    session?.destroy();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
}
