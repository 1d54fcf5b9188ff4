// Image build time only, inside node's snapshot builder: one Health.Check through the agent's real
// ttRPC server and a client over an in-memory pipe. The code the first host request runs (framing,
// protobuf encode/decode, dispatch, the handler) is then compiled before the heap is serialized,
// instead of being compiled lazily in the guest, where V8's parser and compiler run under TCG.
import { Duplex } from "node:stream";
import { createClient, TtrpcClient, type TtrpcServer } from "../protocol/ttrpc/index.js";
import { Health } from "../protocol/gen/katats/agent/v1/health_pb.js";

/** One end of an in-memory pipe: what is written to it is read from its peer. */
class PipeEnd extends Duplex {
  peer: PipeEnd | undefined;
  override _read(): void {
    // Data arrives through the peer's _write.
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.peer?.push(chunk);
    done();
  }
  override _final(done: (err?: Error | null) => void): void {
    this.peer?.push(null);
    done();
  }
}

export async function warmUpFirstRequest(server: TtrpcServer): Promise<void> {
  const a = new PipeEnd();
  const b = new PipeEnd();
  a.peer = b;
  b.peer = a;
  server.serve(b);
  const client = new TtrpcClient(a);
  try {
    await createClient(client, Health).check({}, { timeoutMs: 60_000 });
  } finally {
    client.close();
    a.destroy();
    b.destroy();
  }
}
