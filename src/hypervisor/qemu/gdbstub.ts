// A short-lived gdbstub session on a running QEMU, for the few round trips of a TCG cache flush
// (tcg-flush.ts) or trim (tcg-trim.ts): HMP `gdbserver` opens the stub on a unix socket, our
// connection pauses the VM (QEMU sends a stop reply), the caller's work runs with the VM paused
// (`step` single-steps one vCPU by one instruction: tcg-flush.ts), detach resumes the VM with
// nothing left set, and `gdbserver none` closes the stub.
//
// The gdbstub gives whoever connects full control of the guest, so: its socket must be in a
// directory only root can enter (the caller's VM dir, 0700), it listens only for the session (closed
// and its file removed whatever happens), the whole session has a deadline, and a VM our connection
// paused is resumed on every path out.
import net from "node:net";
import { rm } from "node:fs/promises";
import { KataError } from "../../util/errors.js";

/** What runs an HMP command (QmpClient through human-monitor-command) within `timeoutMs`. */
export type HmpRunner = (commandLine: string, timeoutMs: number) => Promise<string>;

/** How long each clean-up command may take, whatever was left of the session's own deadline. */
const cleanupMs = 5000;

/** A gdb remote-protocol packet: $data#checksum (the sum of the data's bytes, mod 256, in hex). */
export function gdbPacket(data: string): string {
  let sum = 0;
  for (const b of Buffer.from(data, "latin1")) sum = (sum + b) & 0xff;
  return `$${data}#${sum.toString(16).padStart(2, "0")}`;
}

/** The data of each complete packet in `buffer` (acks and partial packets skipped), and what is left. */
export function takeGdbPackets(buffer: string): { packets: string[]; rest: string } {
  const packets: string[] = [];
  let rest = buffer;
  for (;;) {
    const start = rest.indexOf("$");
    if (start < 0) return { packets, rest: "" };
    const hash = rest.indexOf("#", start);
    if (hash < 0 || rest.length < hash + 3) return { packets, rest: rest.slice(start) };
    packets.push(rest.slice(start + 1, hash));
    rest = rest.slice(hash + 3);
  }
}

/** One request/answer exchange at a time over the gdbstub's socket. */
class GdbConnection {
  private buffer = "";
  private waiter: ((packet: string) => void) | undefined;
  private readonly queue: string[] = [];
  private failure: Error | undefined;
  private failWaiter: ((err: Error) => void) | undefined;

  private constructor(private readonly sock: net.Socket) {
    sock.setEncoding("latin1");
    sock.on("data", (chunk: string) => {
      const { packets, rest } = takeGdbPackets(this.buffer + chunk);
      this.buffer = rest;
      for (const p of packets) {
        sock.write("+");
        if (this.waiter !== undefined) {
          const w = this.waiter;
          this.waiter = undefined;
          this.failWaiter = undefined;
          w(p);
        } else this.queue.push(p);
      }
    });
    const fail = (err: Error): void => {
      this.failure ??= err;
      this.failWaiter?.(this.failure);
    };
    sock.on("error", fail);
    sock.on("close", () => fail(new KataError("UNAVAILABLE", "QEMU's gdbstub closed the connection")));
  }

  static connect(path: string, timeoutMs: number): Promise<GdbConnection> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(path);
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new KataError("DEADLINE_EXCEEDED", `QEMU's gdbstub at ${path} did not accept a connection within ${timeoutMs} ms`));
      }, timeoutMs);
      sock.once("connect", () => {
        clearTimeout(timer);
        resolve(new GdbConnection(sock));
      });
      sock.once("error", (err) => {
        clearTimeout(timer);
        reject(new KataError("UNAVAILABLE", `cannot connect to QEMU's gdbstub at ${path}`, { cause: err }));
      });
    });
  }

  /** The data of the next packet QEMU sends (one already received first). */
  next(what: string, timeoutMs: number): Promise<string> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const queued = this.queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        this.failWaiter = undefined;
        reject(new KataError("DEADLINE_EXCEEDED", `QEMU's gdbstub did not answer ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = (p) => {
        clearTimeout(timer);
        resolve(p);
      };
      this.failWaiter = (err) => {
        clearTimeout(timer);
        reject(err);
      };
    });
  }

  /** Sends one packet (its data). */
  send(data: string): void {
    this.sock.write(gdbPacket(data));
  }

  /** The interrupt byte (^C): a running VM stops, a stopped one ignores it. */
  interrupt(): void {
    this.sock.write("\x03");
  }

  close(): void {
    this.sock.destroy();
  }
}

/** How long a step may take before it is interrupted (by default). */
const stepMs = 500;

function isStopReply(packet: string): boolean {
  return /^[ST][0-9a-f]{2}/i.test(packet);
}

/** What the caller may do while the VM is paused. */
export interface PausedVm {
  /**
   * One single step of the current vCPU, `waitMs` at most (default 500): a vCPU that does not
   * finish it in time (halted) is interrupted. Either way one stop reply comes, which this returns
   * ("T05..." for a finished step, "T02..." for an interrupted one), and the VM is paused again.
   */
  step(waitMs?: number): Promise<string>;
  /** Milliseconds left of the session's deadline (at least 1). */
  left(): number;
}

/**
 * Runs `work` with the VM behind `hmp` paused by a gdbstub listening on `socketPath`, then resumes
 * it. `signal` cuts the session short (CANCELLED), the VM resumed. Throws (DEADLINE_EXCEEDED,
 * UNAVAILABLE, INTERNAL) when a step fails or `timeoutMs` (the whole session) passes, or what
 * `work` threw; the gdbstub is closed, its socket file removed and a VM left paused resumed either
 * way.
 */
export async function withPausedVm<T>(hmp: HmpRunner, socketPath: string, timeoutMs: number, signal: AbortSignal | undefined, work: (vm: PausedVm) => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  const left = (): number => Math.max(1, deadline - Date.now());
  const cancelled = (): KataError => new KataError("CANCELLED", "the gdbstub session was cut short (the VM is being stopped); the VM was resumed");
  const aborted = (): boolean => signal?.aborted === true;
  if (aborted()) throw cancelled();
  await rm(socketPath, { force: true });
  let conn: GdbConnection | undefined;
  let detached = false;
  // Cut short: our connection closes, so whatever waits on QEMU's answer fails at once and the
  // clean-up below resumes the VM.
  const onAbort = (): void => conn?.close();
  signal?.addEventListener("abort", onAbort);
  try {
    const opened = await hmp(`gdbserver unix:${socketPath},server=on,wait=off`, left());
    if (!/waiting for gdb connection/i.test(opened)) throw new KataError("INTERNAL", `QEMU did not open its gdbstub: ${opened.trim()}`);
    const c = await GdbConnection.connect(socketPath, left());
    conn = c;
    if (aborted()) throw cancelled();
    // QEMU pauses the VM on the connection and says so (a stop reply).
    const paused = await c.next("the connection", left());
    if (!isStopReply(paused)) throw new KataError("INTERNAL", `QEMU's gdbstub greeted with ${JSON.stringify(paused)}, not a stop reply`);
    const result = await work({
      left,
      async step(waitMs = stepMs) {
        c.send("s");
        const interrupt = setTimeout(() => c.interrupt(), Math.min(waitMs, left()));
        const stepped = await c.next("a step", left()).finally(() => clearTimeout(interrupt));
        if (!isStopReply(stepped)) throw new KataError("INTERNAL", `QEMU's gdbstub answered ${JSON.stringify(stepped)} to a step`);
        return stepped;
      },
    });
    // Detach: the VM resumes, nothing left set.
    c.send("D");
    const answer = await c.next("detach", left());
    if (answer !== "OK") throw new KataError("INTERNAL", `QEMU's gdbstub answered ${JSON.stringify(answer)} to detach`);
    detached = true;
    return result;
  } catch (err) {
    throw aborted() ? cancelled() : err;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    // Also when the open itself timed out (QEMU may have run it late): the gdbstub closed, its
    // socket file gone, and a VM a connection paused (ours, also one given up on before QEMU's
    // greeting) resumed.
    conn?.close();
    await releaseGdbstub(hmp, socketPath, !detached);
  }
}

/**
 * Closes QEMU's gdbstub and removes its socket file; with `resume`, a VM the stub left paused runs
 * again. Also for a session whose owner died mid-way (a shim killed during a trim: QEMU keeps a VM
 * paused when its gdb client goes), by the process that takes the VM over (src/sandbox/reattach.ts).
 * Best effort: nothing here throws.
 */
export async function releaseGdbstub(hmp: HmpRunner, socketPath: string, resume: boolean): Promise<void> {
  await hmp("gdbserver none", cleanupMs).catch(() => undefined);
  await rm(socketPath, { force: true }).catch(() => undefined);
  if (resume && /paused/.test(await hmp("info status", cleanupMs).catch(() => ""))) await hmp("cont", cleanupMs).catch(() => undefined);
}
