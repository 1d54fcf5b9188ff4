// One ttRPC connection on the server side: decodes request frames, runs every call's handler
// concurrently, answers each on its stream id. Hostile or broken input never throws out of here:
// a bad frame gets an error status on its stream (or is ignored), and anything unexpected drops
// this connection only.
import type { Duplex } from "node:stream";
import { create, fromBinary, toBinary, type DescMethod, type Message } from "@bufbuild/protobuf";
import { RequestSchema, ResponseSchema } from "../gen/ttrpc/request_pb.js";
import { TtrpcError, statusOfError } from "./errors.js";
import {
  FrameDecoder,
  MESSAGE_LENGTH_MAX,
  MESSAGE_TYPE_REQUEST,
  MESSAGE_TYPE_RESPONSE,
  encodeFrame,
  type DecodeEvent,
  type Frame,
} from "./frame.js";
import { Code } from "./status.js";
import { writeFrame } from "./write.js";
import { publishServerCall } from "./diagnostics.js";

/** What a handler gets besides its request. */
export interface HandlerContext {
  /** Request metadata (ttrpc Request field 5); for repeated keys the last value wins. */
  metadata: Map<string, string>;
  /** Aborted when the call's deadline passes or the connection closes; reason is a TtrpcError. */
  signal: AbortSignal;
  /** Absolute deadline (Date.now() scale) from the request's timeout_nano, if any. */
  deadline: number | undefined;
}

export type UnaryHandler = (request: Message, ctx: HandlerContext) => Promise<unknown>;

export interface MethodEntry {
  method: DescMethod;
  handler: UnaryHandler;
}

export type MethodLookup = (service: string, method: string) => MethodEntry | TtrpcError;

export interface ConnectionLimits {
  maxConcurrentCalls: number;
}

/**
 * Told of every call a connection starts (with the request frame's payload, as it came) and of
 * each one that ends: what a server needs to hand an unanswered call over to another process,
 * which answers it on the same stream (replay).
 */
export interface CallObserver {
  started(streamId: number, service: string, method: string, requestPayload: Uint8Array): void;
  ended(streamId: number): void;
}

// Above this many bytes queued for the peer, stop reading its requests until it drains them, so
// a client that never reads its answers cannot make us buffer without bound.
const WRITE_BACKLOG_MAX = 16 << 20;
// setTimeout's limit; longer deadlines are treated as none.
const TIMER_MAX_MS = 0x7fff_ffff;

interface ActiveCall {
  controller: AbortController;
  timer: NodeJS.Timeout | undefined;
  service: string;
  method: string;
  started: number;
}

export class ServerConnection {
  private readonly decoder = new FrameDecoder();
  private readonly active = new Map<number, ActiveCall>();
  private closed = false;
  private waitingForDrain = false;
  private requested = false;

  constructor(
    private readonly stream: Duplex,
    private readonly lookup: MethodLookup,
    private readonly limits: ConnectionLimits,
    private readonly onClose: (conn: ServerConnection) => void,
    private readonly observer?: CallObserver,
  ) {
    stream.on("data", (chunk: Buffer | string) => this.onData(chunk));
    // Read errors and resets just end this connection; the reason does not matter to anyone.
    stream.on("error", () => this.close());
    stream.on("end", () => this.close());
    stream.on("close", () => this.close());
  }

  /** Calls being answered on this connection now. */
  get activeCalls(): number {
    return this.active.size;
  }

  /** Calls being answered now, less those `except` names (service, method). */
  activeCallsExcept(except: (service: string, method: string) => boolean): number {
    let n = 0;
    for (const call of this.active.values()) if (!except(call.service, call.method)) n++;
    return n;
  }

  /**
   * Runs a request another process read on this same connection and never answered, as if its
   * frame had just arrived: its answer goes out on its stream id, which the client still waits on.
   */
  replay(streamId: number, requestPayload: Uint8Array): void {
    this.onFrame({ streamId, type: MESSAGE_TYPE_REQUEST, flags: 0, payload: Buffer.from(requestPayload) });
  }

  /** A request frame has arrived on this connection (whatever became of it). */
  get sawRequest(): boolean {
    return this.requested;
  }

  /** Drop the connection and abort every handler still running on it. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const reason = new TtrpcError(Code.CANCELLED, "ttrpc connection closed");
    for (const [id, call] of this.active) {
      clearTimeout(call.timer);
      call.controller.abort(reason);
      this.report(id, call, Code.CANCELLED);
    }
    this.active.clear();
    this.stream.destroy();
    this.onClose(this);
  }

  private onData(chunk: Buffer | string): void {
    if (this.closed) return;
    try {
      const events = this.decoder.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
      for (const ev of events) this.onEvent(ev);
    } catch {
      // Only a bug can get here; losing one connection beats losing the process.
      this.close();
    }
  }

  private onEvent(ev: DecodeEvent): void {
    if (ev.kind === "oversized") {
      if (ev.header.type === MESSAGE_TYPE_REQUEST && ev.header.streamId % 2 === 1) {
        this.sendStatus(
          ev.header.streamId,
          Code.RESOURCE_EXHAUSTED,
          `message length ${ev.length} exceeds maximum message size of ${MESSAGE_LENGTH_MAX}`,
        );
      }
      return;
    }
    this.onFrame(ev.frame);
  }

  private onFrame(frame: Frame): void {
    // Other message types (v1.2 data frames, stray responses) are ignored, as ttrpc does.
    if (frame.type !== MESSAGE_TYPE_REQUEST) return;
    this.requested = true;
    const id = frame.streamId;
    if (id % 2 !== 1) {
      this.sendStatus(id, Code.INVALID_ARGUMENT, "StreamID must be odd for client initiated streams");
      return;
    }
    if (this.active.has(id)) {
      this.sendStatus(id, Code.INVALID_ARGUMENT, `stream id ${id} is already in use by a call in progress`);
      return;
    }
    if (this.active.size >= this.limits.maxConcurrentCalls) {
      this.sendStatus(id, Code.RESOURCE_EXHAUSTED, `too many concurrent calls (max ${this.limits.maxConcurrentCalls})`);
      return;
    }
    let request;
    try {
      request = fromBinary(RequestSchema, frame.payload);
    } catch {
      this.sendStatus(id, Code.INVALID_ARGUMENT, "could not decode ttrpc request");
      return;
    }
    const entry = this.lookup(request.service, request.method);
    if (entry instanceof TtrpcError) {
      const code = this.sendStatus(id, entry.status, entry.message);
      publishServerCall({ service: request.service, method: request.method, streamId: id, status: code, durationMs: 0 });
      return;
    }
    let input: Message;
    try {
      input = fromBinary(entry.method.input, request.payload);
    } catch {
      this.sendStatus(id, Code.INVALID_ARGUMENT, `could not decode ${entry.method.input.typeName}`);
      return;
    }
    const metadata = new Map<string, string>();
    for (const kv of request.metadata) metadata.set(kv.key, kv.value);
    this.observer?.started(id, request.service, request.method, frame.payload);
    this.run(id, entry, input, metadata, request);
  }

  private run(
    id: number,
    entry: MethodEntry,
    input: Message,
    metadata: Map<string, string>,
    request: { service: string; method: string; timeoutNano: bigint },
  ): void {
    const { service, method, timeoutNano } = request;
    const call: ActiveCall = { controller: new AbortController(), timer: undefined, service, method, started: performance.now() };
    let deadline: number | undefined;
    if (timeoutNano > 0n) {
      const ms = Number(timeoutNano / 1_000_000n);
      if (ms <= TIMER_MAX_MS) {
        deadline = Date.now() + ms;
        call.timer = setTimeout(() => this.expire(id, call, ms), ms);
      }
    }
    this.active.set(id, call);
    const ctx: HandlerContext = { metadata, signal: call.controller.signal, deadline };
    // Each handler runs on its own promise: a slow one never holds up the others.
    Promise.resolve()
      .then(() => entry.handler(input, ctx))
      .then(
        (output) => this.finish(id, call, () => toBinary(entry.method.output, create(entry.method.output, output as never))),
        (err: unknown) => this.finishWithError(id, call, err),
      )
      .catch(() => this.close());
  }

  private expire(id: number, call: ActiveCall, ms: number): void {
    if (this.active.get(id) !== call) return;
    this.active.delete(id);
    this.observer?.ended(id);
    const err = new TtrpcError(Code.DEADLINE_EXCEEDED, `deadline of ${ms} ms exceeded`);
    call.controller.abort(err);
    this.report(id, call, this.sendStatus(id, err.status, err.message));
  }

  private finish(id: number, call: ActiveCall, encode: () => Uint8Array): void {
    if (!this.takeCall(id, call)) return;
    let payload: Uint8Array;
    try {
      payload = encode();
    } catch (err) {
      const message = `could not encode the response: ${err instanceof Error ? err.message : String(err)}`;
      this.report(id, call, this.sendStatus(id, Code.INTERNAL, message));
      return;
    }
    this.report(id, call, this.sendResponse(id, { payload }));
  }

  private finishWithError(id: number, call: ActiveCall, err: unknown): void {
    if (!this.takeCall(id, call)) return;
    const st = statusOfError(err);
    this.report(id, call, this.sendStatus(id, st.code, st.message));
  }

  private report(id: number, call: ActiveCall, status: number): void {
    const durationMs = performance.now() - call.started;
    publishServerCall({ service: call.service, method: call.method, streamId: id, status, durationMs });
  }

  /** Removes the call if it is still waiting for its answer (not expired, not closed). */
  private takeCall(id: number, call: ActiveCall): boolean {
    if (this.active.get(id) !== call) return false;
    this.active.delete(id);
    clearTimeout(call.timer);
    this.observer?.ended(id);
    return true;
  }

  private sendStatus(id: number, code: number, message: string): number {
    return this.sendResponse(id, { status: { code, message } });
  }

  /** Sends the answer; returns the status code that went out (or CANCELLED if none could). */
  private sendResponse(id: number, init: { status?: { code: number; message: string }; payload?: Uint8Array }): number {
    if (this.closed || this.stream.destroyed || this.stream.writableEnded) return Code.CANCELLED;
    let code = init.status?.code ?? Code.OK;
    let body = toBinary(ResponseSchema, create(ResponseSchema, init));
    if (body.length > MESSAGE_LENGTH_MAX) {
      const message = `response of ${body.length} bytes exceeds maximum message size of ${MESSAGE_LENGTH_MAX}`;
      code = Code.RESOURCE_EXHAUSTED;
      body = toBinary(ResponseSchema, create(ResponseSchema, { status: { code, message } }));
    }
    const ok = writeFrame(this.stream, encodeFrame({ streamId: id, type: MESSAGE_TYPE_RESPONSE, flags: 0 }, body));
    if (!ok && !this.waitingForDrain && this.stream.writableLength > WRITE_BACKLOG_MAX) {
      this.waitingForDrain = true;
      this.stream.pause();
      this.stream.once("drain", () => {
        this.waitingForDrain = false;
        if (!this.closed) this.stream.resume();
      });
    }
    return code;
  }
}
