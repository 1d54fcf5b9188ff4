// ttRPC client: unary calls multiplexed on one connection (odd stream ids from 1, step 2), each
// with its own deadline; every pending call fails with UNAVAILABLE when the connection goes away.
// The server may be untrusted (the guest agent): a frame over the 4 MiB limit is a protocol
// violation (a conforming server never sends one), so the connection is closed at its header
// rather than skipping up to 4 GiB while every later answer waits behind it.
import net from "node:net";
import type { Duplex } from "node:stream";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { RequestSchema, ResponseSchema } from "../gen/ttrpc/request_pb.js";
import { socketPathOf } from "./address.js";
import { TtrpcError } from "./errors.js";
import {
  FrameDecoder,
  MESSAGE_LENGTH_MAX,
  MESSAGE_TYPE_REQUEST,
  MESSAGE_TYPE_RESPONSE,
  STREAM_ID_MAX,
  encodeFrame,
  type DecodeEvent,
} from "./frame.js";
import { Code } from "./status.js";
import { publishClientCall } from "./diagnostics.js";
import { writeFrame } from "./write.js";

export type Metadata = Record<string, string> | Map<string, string> | Iterable<readonly [string, string]>;

export interface CallOptions {
  /** Deadline for this call; sent to the server as timeout_nano too. Absent or 0: none. */
  timeoutMs?: number;
  metadata?: Metadata;
  signal?: AbortSignal;
}

interface Pending {
  resolve: (payload: Uint8Array) => void;
  reject: (err: TtrpcError) => void;
}

export class TtrpcClient {
  /** Resolves once the underlying stream has closed, for whatever reason. */
  readonly closed: Promise<void>;
  private readonly decoder = new FrameDecoder();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closeReasonValue: TtrpcError | undefined;

  /**
   * `firstStreamId` (odd): where this connection's ids start. A connection that takes over a
   * server another client used (a reattached pod's agent) starts far from 1, so that a late answer
   * meant for the old client, delivered on the new connection, matches none of its calls.
   */
  constructor(
    private readonly stream: Duplex,
    firstStreamId = 1,
  ) {
    if (firstStreamId % 2 !== 1 || firstStreamId > STREAM_ID_MAX) throw new TtrpcError(Code.INVALID_ARGUMENT, `a client stream id must be odd and at most ${STREAM_ID_MAX}: ${firstStreamId}`);
    this.nextId = firstStreamId;
    this.closed = new Promise((resolve) => stream.once("close", () => resolve()));
    stream.on("data", (chunk: Buffer | string) => this.onData(chunk));
    stream.on("error", (err) => this.shutdown(new TtrpcError(Code.UNAVAILABLE, `ttrpc connection failed: ${err.message}`, { cause: err })));
    stream.on("end", () => this.shutdown(new TtrpcError(Code.UNAVAILABLE, "ttrpc connection closed by the server")));
    stream.on("close", () => this.shutdown(new TtrpcError(Code.UNAVAILABLE, "ttrpc connection closed")));
    if (stream.destroyed) this.shutdown(new TtrpcError(Code.UNAVAILABLE, "ttrpc connection closed"));
  }

  /** Connect to a unix socket (a path or unix:///path). */
  static connect(address: string, opts: { timeoutMs?: number; firstStreamId?: number } = {}): Promise<TtrpcClient> {
    const path = socketPathOf(address);
    const timeoutMs = opts.timeoutMs ?? 5000;
    return new Promise((resolve, reject) => {
      const sock = net.createConnection(path);
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new TtrpcError(Code.DEADLINE_EXCEEDED, `could not connect to ttrpc socket ${path} within ${timeoutMs} ms`));
      }, timeoutMs);
      sock.once("connect", () => {
        clearTimeout(timer);
        sock.removeAllListeners("error");
        resolve(new TtrpcClient(sock, opts.firstStreamId));
      });
      sock.once("error", (err) => {
        clearTimeout(timer);
        reject(new TtrpcError(Code.UNAVAILABLE, `cannot connect to ttrpc socket ${path}: ${err.message}`, { cause: err }));
      });
    });
  }

  /** One unary call: the encoded request in, the encoded response out, or a TtrpcError. */
  call(service: string, method: string, payload: Uint8Array, opts: CallOptions = {}): Promise<Uint8Array> {
    if (this.closeReasonValue !== undefined) {
      return Promise.reject(new TtrpcError(Code.UNAVAILABLE, this.closeReasonValue.message));
    }
    if (opts.signal?.aborted === true) {
      return Promise.reject(new TtrpcError(Code.CANCELLED, `${service}.${method} cancelled before it was sent`));
    }
    const timeoutMs = opts.timeoutMs ?? 0;
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
      return Promise.reject(new TtrpcError(Code.INVALID_ARGUMENT, `timeoutMs must be a positive number, got ${timeoutMs}`));
    }
    const body = toBinary(
      RequestSchema,
      create(RequestSchema, {
        service,
        method,
        payload,
        timeoutNano: BigInt(Math.ceil(timeoutMs * 1e6)),
        metadata: metadataPairs(opts.metadata),
      }),
    );
    if (body.length > MESSAGE_LENGTH_MAX) {
      return Promise.reject(
        new TtrpcError(
          Code.RESOURCE_EXHAUSTED,
          `${service}.${method} request of ${body.length} bytes exceeds maximum message size of ${MESSAGE_LENGTH_MAX}`,
        ),
      );
    }
    const id = this.allocateId();
    const started = performance.now();
    return new Promise<Uint8Array>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = (): void => settle(new TtrpcError(Code.CANCELLED, `${service}.${method} cancelled`));
      const settle = (result: Uint8Array | TtrpcError): void => {
        if (this.pending.get(id) !== entry) return;
        this.pending.delete(id);
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
        const status = result instanceof TtrpcError ? result.status : Code.OK;
        publishClientCall({ service, method, streamId: id, status, durationMs: performance.now() - started });
        if (result instanceof TtrpcError) reject(result);
        else resolve(result);
      };
      const entry: Pending = { resolve: settle, reject: settle };
      this.pending.set(id, entry);
      if (timeoutMs > 0) {
        timer = setTimeout(
          () => settle(new TtrpcError(Code.DEADLINE_EXCEEDED, `${service}.${method}: deadline of ${timeoutMs} ms exceeded`)),
          Math.min(timeoutMs, 0x7fff_ffff),
        );
      }
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      writeFrame(this.stream, encodeFrame({ streamId: id, type: MESSAGE_TYPE_REQUEST, flags: 0 }, body));
    });
  }

  /** Close the connection; pending calls fail with UNAVAILABLE. */
  close(): void {
    this.shutdown(new TtrpcError(Code.UNAVAILABLE, "ttrpc client closed"));
  }

  /** Why the connection ended (undefined while it is open): the error pending calls failed with. */
  get closeReason(): TtrpcError | undefined {
    return this.closeReasonValue;
  }

  private allocateId(): number {
    // Odd ids 1, 3, ... wrapping past 2^32 back to 1 (as ttrpc's uint32 does), skipping ids in use.
    let id = this.nextId;
    while (this.pending.has(id)) id = id + 2 > STREAM_ID_MAX ? 1 : id + 2;
    this.nextId = id + 2 > STREAM_ID_MAX ? 1 : id + 2;
    return id;
  }

  private shutdown(reason: TtrpcError): void {
    if (this.closeReasonValue === undefined) this.closeReasonValue = reason;
    for (const p of [...this.pending.values()]) p.reject(new TtrpcError(reason.status, reason.message, { cause: reason.cause }));
    this.pending.clear();
    if (!this.stream.destroyed) this.stream.destroy();
  }

  private onData(chunk: Buffer | string): void {
    if (this.closeReasonValue !== undefined) return;
    let events: DecodeEvent[];
    try {
      events = this.decoder.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
    } catch (err) {
      this.shutdown(new TtrpcError(Code.INTERNAL, "ttrpc client failed to decode the stream", { cause: err }));
      return;
    }
    for (const ev of events) {
      if (ev.kind === "oversized") {
        this.shutdown(
          new TtrpcError(
            Code.UNAVAILABLE,
            `ttrpc protocol violation by the server: a frame of ${ev.length} bytes (stream ${ev.header.streamId}, type ${ev.header.type}) ` +
              `exceeds the ${MESSAGE_LENGTH_MAX}-byte limit; connection closed`,
          ),
        );
        return;
      }
      const frame = ev.frame;
      if (frame.type !== MESSAGE_TYPE_RESPONSE) continue;
      const p = this.pending.get(frame.streamId);
      if (p === undefined) continue; // late answer to a call that timed out or was cancelled
      let response;
      try {
        response = fromBinary(ResponseSchema, frame.payload);
      } catch (err) {
        p.reject(new TtrpcError(Code.INTERNAL, "could not decode ttrpc response", { cause: err }));
        continue;
      }
      const st = response.status;
      if (st !== undefined && st.code !== Code.OK) p.reject(new TtrpcError(st.code, st.message));
      else p.resolve(response.payload);
    }
  }
}

function metadataPairs(md: Metadata | undefined): { key: string; value: string }[] {
  if (md === undefined) return [];
  const entries: Iterable<readonly [string, string]> =
    md instanceof Map || Symbol.iterator in md ? (md as Iterable<readonly [string, string]>) : Object.entries(md);
  return [...entries].map(([key, value]) => ({ key, value }));
}
