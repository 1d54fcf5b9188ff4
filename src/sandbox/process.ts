// A process in a sandboxed container, seen from the host: wait, signal, resize, and stdio pumps
// that move bytes between host streams and the agent's ReadStdout/ReadStderr/WriteStdin calls.
import type { Readable, Writable } from "node:stream";
import { once } from "node:events";
import { KataError, isKataError } from "../util/errors.js";
import type { AgentClient, ExitStatus } from "./agent-client.js";

/** Under the 4 MiB ttRPC frame limit with room for the envelope. */
const CHUNK = 1024 * 1024;

export class SandboxProcess {
  private exitStatus: ExitStatus | undefined;

  constructor(
    private readonly agent: AgentClient,
    readonly containerId: string,
    /** "" for the container's init process. */
    readonly execId: string,
    readonly pid: number,
    readonly terminal: boolean,
  ) {}

  get exit(): ExitStatus | undefined {
    return this.exitStatus;
  }

  async wait(signal?: AbortSignal): Promise<ExitStatus> {
    this.exitStatus ??= await this.agent.wait(this.containerId, this.execId, signal);
    return this.exitStatus;
  }

  async signal(sig: number, all = false): Promise<void> {
    try {
      await this.agent.signal(this.containerId, this.execId, sig, all);
    } catch (err) {
      if (isKataError(err, "NOT_FOUND")) return; // already exited: nothing to signal
      throw err;
    }
  }

  resize(rows: number, cols: number): Promise<void> {
    return this.agent.resize(this.containerId, this.execId, rows, cols);
  }

  closeStdin(): Promise<void> {
    return this.agent.closeStdin(this.containerId, this.execId);
  }

  /** Copies one output stream to `out` until the process closes it. Honours `out`'s backpressure. */
  async pumpOutput(which: "stdout" | "stderr", out: Writable, signal?: AbortSignal): Promise<number> {
    let total = 0;
    for (;;) {
      const chunk = await this.agent.read(which, this.containerId, this.execId, CHUNK, signal);
      if (chunk.data.length > 0) {
        total += chunk.data.length;
        if (!out.write(chunk.data)) await once(out, "drain", signal ? { signal } : {});
      }
      if (chunk.eof) return total;
    }
  }

  /** Sends `input` to the process's stdin, then closes it. Stops quietly if the process is gone. */
  async pumpInput(input: Readable): Promise<void> {
    try {
      for await (const buf of input as AsyncIterable<Buffer | string>) {
        const data = typeof buf === "string" ? Buffer.from(buf) : buf;
        for (let off = 0; off < data.length; off += CHUNK) {
          await this.agent.write(this.containerId, this.execId, data.subarray(off, off + CHUNK));
        }
      }
      await this.closeStdin();
    } catch (err) {
      // The process exited (or closed its stdin) before reading everything: like a broken pipe.
      if (isKataError(err, "FAILED_PRECONDITION") || isKataError(err, "NOT_FOUND")) return;
      throw new KataError("INTERNAL", `sending stdin to ${this.containerId} failed`, { cause: err });
    }
  }
}
