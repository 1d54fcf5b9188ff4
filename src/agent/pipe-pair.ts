// An in-memory pipe whose two ends are Duplex streams: the agent serves its own ttRPC server on
// one end and calls it through a client on the other (the warm-ups: snapshot build time, and the
// container warm-up of a pooled VM), so every layer a host call meets runs, framing included.
import { Duplex } from "node:stream";

/** One end of an in-memory pipe: what is written to it is read from its peer. */
export class PipeEnd extends Duplex {
  peer: PipeEnd | undefined;
  readonly written: Buffer[] = [];
  constructor(private readonly keepWritten = false) {
    super();
  }
  override _read(): void {
    // Data arrives through the peer's _write.
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    if (this.keepWritten) this.written.push(Buffer.from(chunk));
    this.peer?.push(chunk);
    done();
  }
  override _final(done: (err?: Error | null) => void): void {
    this.peer?.push(null);
    done();
  }
}

/** Two connected ends; `keepWritten` keeps what the first end wrote (its `written`). */
export function pipePair(keepWritten = false): [PipeEnd, PipeEnd] {
  const a = new PipeEnd(keepWritten);
  const b = new PipeEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
