// Test helpers that speak ttRPC at the byte level over a real unix socket, so tests can send what
// our own client never would (even ids, garbage, oversized frames) and read the raw answers.
import { mkdtemp, readdir, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { RequestSchema, ResponseSchema } from "../../src/protocol/gen/ttrpc/request_pb.js";
import { FrameDecoder, MESSAGE_TYPE_REQUEST, encodeFrame, type Frame, type TtrpcServer } from "../../src/protocol/ttrpc/index.js";

export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-ttrpc-"));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function requestBytes(
  streamId: number,
  service: string,
  method: string,
  payload: Uint8Array = new Uint8Array(),
  extra: { timeoutNano?: bigint; metadata?: { key: string; value: string }[] } = {},
): Buffer {
  const body = toBinary(RequestSchema, create(RequestSchema, { service, method, payload, ...extra }));
  return encodeFrame({ streamId, type: MESSAGE_TYPE_REQUEST, flags: 0 }, body);
}

export function decodeResponse(frame: Frame): { code: number; message: string; payload: Uint8Array } {
  const r = fromBinary(ResponseSchema, frame.payload);
  return { code: r.status?.code ?? 0, message: r.status?.message ?? "", payload: r.payload };
}

/** A raw connection: write any bytes, collect the frames the server sends back. */
export class RawConn {
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;
  private readonly decoder = new FrameDecoder();
  private wake: (() => void) | undefined;

  private constructor(readonly sock: net.Socket) {
    sock.on("data", (chunk: Buffer) => {
      for (const ev of this.decoder.push(chunk)) if (ev.kind === "frame") this.frames.push(ev.frame);
      this.wake?.();
    });
    sock.on("error", () => undefined);
    this.closed = new Promise((resolve) => sock.once("close", () => resolve()));
    void this.closed.then(() => this.wake?.());
  }

  static open(path: string): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection(path);
      sock.once("connect", () => resolve(new RawConn(sock)));
      sock.once("error", reject);
    });
  }

  write(bytes: Uint8Array): void {
    if (!this.sock.destroyed) this.sock.write(bytes);
  }

  /** Wait until at least n frames have arrived (or the socket closed, or timeoutMs passed). */
  async waitFrames(n: number, timeoutMs = 10_000): Promise<Frame[]> {
    const until = Date.now() + timeoutMs;
    while (this.frames.length < n && !this.sock.destroyed && Date.now() < until) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, until - Date.now()));
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    return this.frames;
  }

  close(): Promise<void> {
    this.sock.destroy();
    return this.closed;
  }
}

/** A server listening on a fresh temp socket; dispose() closes it and checks the socket is gone. */
export async function listenTemp(server: TtrpcServer): Promise<{ path: string; dispose: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-ttrpc-"));
  const path = join(dir, "ttrpc.sock");
  await server.listen(path);
  return {
    path,
    dispose: async () => {
      await server.close();
      const left = await readdir(dir);
      await rm(dir, { recursive: true, force: true });
      if (left.length > 0) throw new Error(`server.close() left ${left.join(", ")} behind`);
    },
  };
}

/** A seeded pseudo-random generator (mulberry32): a fuzz run that fails can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
