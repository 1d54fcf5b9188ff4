// A small QMP (QEMU Machine Protocol) client: JSON objects, one per line, over QEMU's unix control
// socket. On connect QEMU sends a greeting and accepts only `qmp_capabilities` until negotiated;
// then each command gets exactly one {"return"} or {"error"} carrying the command's "id", and
// asynchronous {"event"} messages (SHUTDOWN, STOP, GUEST_PANICKED, ...) may arrive at any time.
// Only the commands kata-ts uses are typed below.
import net from "node:net";
import { KataError, type KataErrorCode } from "../../util/errors.js";

export interface QmpStatus {
  running: boolean;
  singlestep?: boolean;
  /** "running", "paused", "shutdown", "prelaunch", "guest-panicked", ... */
  status: string;
}

export interface QmpVersion {
  qemu: { major: number; minor: number; micro: number };
  package: string;
}

/** Command name -> [arguments, return value]. */
export interface QmpCommands {
  qmp_capabilities: [undefined, Record<string, never>];
  "query-status": [undefined, QmpStatus];
  "query-version": [undefined, QmpVersion];
  system_powerdown: [undefined, Record<string, never>];
  quit: [undefined, Record<string, never>];
  stop: [undefined, Record<string, never>];
  cont: [undefined, Record<string, never>];
  /** An HMP command through QMP; used only for diagnostics (its text output is not a stable API). */
  "human-monitor-command": [{ "command-line": string }, string];
}

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

/** A QMP {"error"}: `qmpClass` is QEMU's error class (GenericError, CommandNotFound, ...). */
export class QmpError extends KataError {
  constructor(
    code: KataErrorCode,
    message: string,
    readonly qmpClass: string,
  ) {
    super(code, message);
    this.name = "QmpError";
  }
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: KataError) => void;
  timer: NodeJS.Timeout;
}

type EventListener = (event: QmpEvent) => void;

const defaultTimeoutMs = 5000;

export class QmpClient {
  /** Every event received, in order (SHUTDOWN's reason tells how a VM ended). */
  readonly events: QmpEvent[] = [];
  readonly closed: Promise<void>;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Set<EventListener>();
  private nextId = 1;
  private buffer = "";
  private isClosed = false;
  private greetingWaiter: ((err?: KataError) => void) | undefined;

  private constructor(private readonly sock: net.Socket) {
    this.closed = new Promise((resolve) => sock.once("close", () => resolve()));
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => this.onData(chunk));
    sock.on("error", () => undefined); // "close" follows and fails what is pending
    sock.on("close", () => this.failAll(new KataError("UNAVAILABLE", "QMP connection closed")));
  }

  /** Connect, read the greeting and negotiate capabilities, all within timeoutMs. */
  static async connect(socketPath: string, opts: { timeoutMs?: number } = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? defaultTimeoutMs;
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection(socketPath);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new KataError("DEADLINE_EXCEEDED", `could not connect to QMP socket ${socketPath} within ${timeoutMs} ms`));
      }, timeoutMs);
      s.once("connect", () => {
        clearTimeout(timer);
        s.removeAllListeners("error");
        resolve(s);
      });
      s.once("error", (err) => {
        clearTimeout(timer);
        reject(new KataError("UNAVAILABLE", `cannot connect to QMP socket ${socketPath}: ${err.message}`, { cause: err }));
      });
    });
    const client = new QmpClient(sock);
    try {
      await client.greeting(timeoutMs);
      await client.execute("qmp_capabilities", undefined, { timeoutMs });
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  execute<K extends keyof QmpCommands>(
    command: K,
    args?: QmpCommands[K][0],
    opts: { timeoutMs?: number } = {},
  ): Promise<QmpCommands[K][1]> {
    if (this.isClosed) return Promise.reject(new KataError("UNAVAILABLE", `QMP ${command}: connection is closed`));
    const id = this.nextId++;
    const timeoutMs = opts.timeoutMs ?? defaultTimeoutMs;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new KataError("DEADLINE_EXCEEDED", `QMP ${command} got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      const message = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
      this.sock.write(`${JSON.stringify(message)}\n`);
    });
  }

  /** Subscribe to events; returns the unsubscribe function. */
  onEvent(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The next event named `name` (or one already received if `includePast`), within timeoutMs. */
  waitForEvent(name: string, opts: { timeoutMs?: number; includePast?: boolean } = {}): Promise<QmpEvent> {
    const past = opts.includePast === true ? this.events.find((e) => e.event === name) : undefined;
    if (past !== undefined) return Promise.resolve(past);
    const timeoutMs = opts.timeoutMs ?? defaultTimeoutMs;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new KataError("DEADLINE_EXCEEDED", `no QMP ${name} event within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.onEvent((event) => {
        if (event.event !== name) return;
        clearTimeout(timer);
        off();
        resolve(event);
      });
    });
  }

  close(): void {
    this.sock.destroy();
  }

  private greeting(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.greetingWaiter = undefined;
        reject(new KataError("DEADLINE_EXCEEDED", `no QMP greeting within ${timeoutMs} ms`));
      }, timeoutMs);
      this.greetingWaiter = (err) => {
        clearTimeout(timer);
        if (err === undefined) resolve();
        else reject(err);
      };
    });
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf("\n")) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line !== "") this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.failAll(new KataError("INTERNAL", `QMP sent a line that is not JSON: ${line.slice(0, 200)}`));
      this.close();
      return;
    }
    if ("QMP" in msg) {
      this.greetingWaiter?.();
      this.greetingWaiter = undefined;
    } else if (typeof msg.event === "string") {
      const event = msg as unknown as QmpEvent;
      this.events.push(event);
      for (const l of [...this.listeners]) l(event);
    } else if (typeof msg.id === "number") {
      this.settle(msg.id, msg);
    }
  }

  private settle(id: number, msg: Record<string, unknown>): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if ("return" in msg) {
      p.resolve(msg.return);
      return;
    }
    const error = (msg.error ?? {}) as { class?: string; desc?: string };
    const qmpClass = error.class ?? "GenericError";
    const code: KataErrorCode = qmpClass === "CommandNotFound" ? "UNIMPLEMENTED" : qmpClass === "DeviceNotFound" ? "NOT_FOUND" : "INTERNAL";
    p.reject(new QmpError(code, `QMP ${p.command} failed: ${error.desc ?? "no description"} (${qmpClass})`, qmpClass));
  }

  private failAll(err: KataError): void {
    this.isClosed = true;
    this.greetingWaiter?.(new KataError(err.code, `no QMP greeting: ${err.message}`));
    this.greetingWaiter = undefined;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new KataError(err.code, `QMP ${p.command}: ${err.message}`));
    }
  }
}
