// One output stream of a container process (stdout or stderr), held in the agent until the host
// pulls it with ReadStdout/ReadStderr. A read takes what is buffered; with nothing buffered it
// waits for data or end of stream. The producer is paused above a high-water mark so that a
// process writing faster than the host reads is held back by its pipe, not by agent memory.
import type { Readable } from "node:stream";
import { KataError } from "../../util/errors.js";

export interface ReadResult {
  data: Buffer;
  /** No more data will come; data may still be non-empty. */
  eof: boolean;
}

const HIGH_WATER = 4 * 1024 * 1024;

export class OutputBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  private ended = false;
  private waiters: (() => void)[] = [];
  private source: Readable | undefined;

  /** Attach the pipe this buffer drains; with none attached, the buffer is already at EOF. */
  attach(source: Readable | null | undefined): void {
    if (source === null || source === undefined) {
      this.end();
      return;
    }
    this.source = source;
    source.on("data", (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.size += chunk.length;
      if (this.size >= HIGH_WATER) source.pause();
      this.wake();
    });
    source.once("end", () => this.end());
    source.once("close", () => this.end());
    source.once("error", () => this.end());
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  get bufferedBytes(): number {
    return this.size;
  }

  /** At most `max` bytes; waits (until `signal` aborts) while nothing is buffered and not at EOF. */
  async read(max: number, signal?: AbortSignal): Promise<ReadResult> {
    while (this.size === 0 && !this.ended) {
      await this.waitForData(signal);
    }
    const out: Buffer[] = [];
    let taken = 0;
    while (taken < max && this.chunks.length > 0) {
      const head = this.chunks[0]!;
      const want = max - taken;
      if (head.length <= want) {
        out.push(head);
        taken += head.length;
        this.chunks.shift();
      } else {
        out.push(head.subarray(0, want));
        this.chunks[0] = head.subarray(want);
        taken += want;
      }
    }
    this.size -= taken;
    if (this.size < HIGH_WATER / 2 && this.source?.isPaused()) this.source.resume();
    return { data: Buffer.concat(out, taken), eof: this.ended && this.size === 0 };
  }

  private waitForData(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(new KataError("CANCELLED", "the read was cancelled"));
        return;
      }
      const onAbort = (): void => {
        this.waiters = this.waiters.filter((w) => w !== done);
        reject(new KataError("CANCELLED", "the read was cancelled"));
      };
      const done = (): void => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      this.waiters.push(done);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  private wake(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }
}
