// Drops every translation in a running QEMU's TCG cache (tb_flush), at a moment the caller picks:
// the pool, before it rehearses a pod's path in a pooled VM (src/pool/pooled-vm.ts: what the cache
// holds at the offer is then that path), and a measuring tool (bench/pool-start-steps.ts `flush=1`).
// QEMU 7.2 has no monitor command for it, and inserting a breakpoint does not flush any more (7.2
// checks breakpoints per TB), but switching a vCPU's single-stepping on does (seen with HMP `info
// jit`: the flush count goes up by one, the cache to ~0). Its gdbstub does that for one step: open
// the gdbstub on a unix socket (HMP `gdbserver`), connect (QEMU pauses the VM and sends a stop
// reply), step (a vCPU that does not finish its step soon is interrupted; either way one stop reply
// comes and stepping is off again), detach (the VM runs on, nothing left set), close the gdbstub
// (`gdbserver none`). The VM is paused for a few round trips.
//
// The gdbstub gives whoever connects full control of the guest, so: its socket must be in a
// directory only root can enter (the caller's VM dir, 0700), it listens only for the few round
// trips of one flush (closed and its file removed whatever happens), the whole exchange has a
// deadline, and a VM our connection paused is resumed on every path out.
import net from "node:net";
import { rm } from "node:fs/promises";
import { KataError } from "../../util/errors.js";

/** What runs an HMP command (QmpClient through human-monitor-command) within `timeoutMs`. */
export type HmpRunner = (commandLine: string, timeoutMs: number) => Promise<string>;

/** How long each clean-up command may take, whatever was left of the flush's own deadline. */
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

/** How long a step may take before it is interrupted. */
const stepMs = 500;

function isStopReply(packet: string): boolean {
  return /^[ST][0-9a-f]{2}/i.test(packet);
}

/**
 * Flushes the TCG translation cache of the QEMU behind `hmp` (a running VM under TCG).
 * `socketPath` is where the short-lived gdbstub listens: in a directory only root can enter (the
 * VM's own). The VM runs on afterwards as before. Throws (DEADLINE_EXCEEDED, UNAVAILABLE, INTERNAL)
 * when a step fails or `timeoutMs` (the whole flush) passes; the gdbstub is closed, its socket file
 * removed and a VM left paused resumed either way.
 */
export async function flushTcgCache(hmp: HmpRunner, socketPath: string, opts: { timeoutMs?: number } = {}): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 5000);
  const left = (): number => Math.max(1, deadline - Date.now());
  await rm(socketPath, { force: true });
  let conn: GdbConnection | undefined;
  let detached = false;
  try {
    const opened = await hmp(`gdbserver unix:${socketPath},server=on,wait=off`, left());
    if (!/waiting for gdb connection/i.test(opened)) throw new KataError("INTERNAL", `QEMU did not open its gdbstub: ${opened.trim()}`);
    conn = await GdbConnection.connect(socketPath, left());
    // QEMU pauses the VM on the connection and says so (a stop reply).
    const paused = await conn.next("the connection", left());
    if (!isStopReply(paused)) throw new KataError("INTERNAL", `QEMU's gdbstub greeted with ${JSON.stringify(paused)}, not a stop reply`);
    // Stepping on flushes the cache. A vCPU that does not finish its step soon (halted) is
    // interrupted: either way one stop reply comes, and QEMU switches stepping off again.
    conn.send("s");
    const interrupt = setTimeout(() => conn?.interrupt(), Math.min(stepMs, left()));
    const stepped = await conn.next("a step", left()).finally(() => clearTimeout(interrupt));
    if (!isStopReply(stepped)) throw new KataError("INTERNAL", `QEMU's gdbstub answered ${JSON.stringify(stepped)} to a step`);
    // Detach: the VM resumes, nothing left set.
    conn.send("D");
    const answer = await conn.next("detach", left());
    if (answer !== "OK") throw new KataError("INTERNAL", `QEMU's gdbstub answered ${JSON.stringify(answer)} to detach`);
    detached = true;
  } finally {
    // Also when the open itself timed out (QEMU may have run it late): the gdbstub closed, its
    // socket file gone, and a VM a connection paused (ours, also one given up on before QEMU's
    // greeting) resumed.
    conn?.close();
    await hmp("gdbserver none", cleanupMs).catch(() => undefined);
    await rm(socketPath, { force: true }).catch(() => undefined);
    if (!detached && /paused/.test(await hmp("info status", cleanupMs).catch(() => ""))) await hmp("cont", cleanupMs).catch(() => undefined);
  }
}
