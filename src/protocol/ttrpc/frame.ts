// ttRPC v1.1 framing (containerd/ttrpc channel.go): a 10-byte header, then the payload.
//
//   bytes 0-3  payload length, uint32 big-endian
//   bytes 4-7  stream id, uint32 big-endian (client-initiated ids are odd)
//   byte  8    message type (1 request, 2 response)
//   byte  9    flags (0 in v1.1)
//
// The decoder keeps at most one payload, in one buffer that grows (doubling) towards the length
// the header claims as bytes arrive: memory stays under twice the bytes received and never above
// the frame's length (at most MESSAGE_LENGTH_MAX), however the peer slices its writes. A frame
// longer than that is reported as "oversized" at once; what the caller does with it is policy
// (the server skips it and answers RESOURCE_EXHAUSTED, the client ends the connection: see
// docs/ttrpc.md).
import { KataError } from "../../util/errors.js";

/** channel.go messageHeaderLength */
export const MESSAGE_HEADER_LENGTH = 10;
/** channel.go messageLengthMax: 4 MiB */
export const MESSAGE_LENGTH_MAX = 4 << 20;
/** channel.go messageTypeRequest */
export const MESSAGE_TYPE_REQUEST = 0x1;
/** channel.go messageTypeResponse */
export const MESSAGE_TYPE_RESPONSE = 0x2;
/** The largest stream id (uint32). */
export const STREAM_ID_MAX = 0xffff_ffff;

export interface FrameHeader {
  streamId: number;
  type: number;
  flags: number;
}

export interface Frame extends FrameHeader {
  payload: Buffer;
}

/** What the decoder found: a whole frame, or the header of a frame too large to accept. */
export type DecodeEvent =
  | { kind: "frame"; frame: Frame }
  | { kind: "oversized"; header: FrameHeader; length: number };

export function encodeFrame(header: FrameHeader, payload: Uint8Array): Buffer {
  if (payload.length > MESSAGE_LENGTH_MAX) {
    throw new KataError(
      "RESOURCE_EXHAUSTED",
      `ttrpc message of ${payload.length} bytes exceeds the maximum of ${MESSAGE_LENGTH_MAX} bytes`,
    );
  }
  if (!Number.isInteger(header.streamId) || header.streamId < 0 || header.streamId > STREAM_ID_MAX) {
    throw new KataError("INVALID_ARGUMENT", `ttrpc stream id ${header.streamId} is not a uint32`);
  }
  const buf = Buffer.allocUnsafe(MESSAGE_HEADER_LENGTH + payload.length);
  buf.writeUInt32BE(payload.length, 0);
  buf.writeUInt32BE(header.streamId, 4);
  buf.writeUInt8(header.type & 0xff, 8);
  buf.writeUInt8(header.flags & 0xff, 9);
  buf.set(payload, MESSAGE_HEADER_LENGTH);
  return buf;
}

// First allocation for a payload whose bytes have not arrived yet: a peer that claims 4 MiB and
// then sends one byte costs this much, not 4 MiB.
const INITIAL_PAYLOAD_BUFFER = 64 << 10;

/**
 * Incremental decoder: push() the bytes as they arrive, get back the complete frames. The caller's
 * chunks are copied, never retained or aliased, so a frame sent one byte at a time costs one
 * buffer of its own size, not a list of a million one-byte chunks.
 */
export class FrameDecoder {
  private readonly header = Buffer.alloc(MESSAGE_HEADER_LENGTH);
  private headerFill = 0;
  private current: FrameHeader | undefined;
  private skipping = false; // the current payload is oversized: drop its bytes
  private payload: Buffer = Buffer.alloc(0);
  private fill = 0; // payload bytes received so far
  private length = 0; // the current payload's length
  private remaining = 0; // payload bytes still to come for `current`

  constructor(private readonly maxPayload = MESSAGE_LENGTH_MAX) {}

  /** True when no partial frame is buffered. */
  get idle(): boolean {
    return this.headerFill === 0 && this.current === undefined;
  }

  /** Bytes held for the frame in progress (for tests and diagnostics). */
  get bufferedBytes(): number {
    return this.payload.length;
  }

  push(chunk: Uint8Array): DecodeEvent[] {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const events: DecodeEvent[] = [];
    let off = 0;
    while (off < buf.length) {
      if (this.current === undefined) {
        const n = Math.min(MESSAGE_HEADER_LENGTH - this.headerFill, buf.length - off);
        buf.copy(this.header, this.headerFill, off, off + n);
        this.headerFill += n;
        off += n;
        if (this.headerFill < MESSAGE_HEADER_LENGTH) break;
        this.headerFill = 0;
        this.startPayload(events);
        continue;
      }
      const n = Math.min(this.remaining, buf.length - off);
      if (!this.skipping) this.append(buf, off, n);
      this.remaining -= n;
      off += n;
      if (this.remaining === 0) this.finishPayload(events);
    }
    return events;
  }

  private append(buf: Buffer, off: number, n: number): void {
    const needed = this.fill + n;
    if (needed > this.payload.length) {
      let size = Math.max(this.payload.length * 2, INITIAL_PAYLOAD_BUFFER);
      while (size < needed) size *= 2;
      const grown = Buffer.allocUnsafe(Math.min(size, this.length));
      this.payload.copy(grown, 0, 0, this.fill);
      this.payload = grown;
    }
    buf.copy(this.payload, this.fill, off, off + n);
    this.fill = needed;
  }

  private startPayload(events: DecodeEvent[]): void {
    const length = this.header.readUInt32BE(0);
    const header: FrameHeader = {
      streamId: this.header.readUInt32BE(4),
      type: this.header.readUInt8(8),
      flags: this.header.readUInt8(9),
    };
    this.current = header;
    this.length = length;
    this.remaining = length;
    this.payload = Buffer.alloc(0);
    this.fill = 0;
    this.skipping = length > this.maxPayload;
    // Report now so the peer gets its answer without waiting for the bytes we will drop.
    if (this.skipping) events.push({ kind: "oversized", header, length });
    if (length === 0) this.finishPayload(events);
  }

  private finishPayload(events: DecodeEvent[]): void {
    const header = this.current;
    // The buffer is exactly `length` long once complete (it never grows past the claimed length).
    const payload = this.payload.length === this.fill ? this.payload : this.payload.subarray(0, this.fill);
    this.current = undefined;
    this.payload = Buffer.alloc(0);
    this.fill = 0;
    if (header === undefined || this.skipping) return;
    events.push({ kind: "frame", frame: { ...header, payload } });
  }
}
