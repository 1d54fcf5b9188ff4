// One JSON message per line over a unix socket, for the small request/answer protocols kata-ts owns:
// the pool socket (src/pool/protocol.ts) and the warm shim hand-over (src/shim/warm-protocol.ts). A
// client connects, sends one line and reads one line back; a server reads one line from a
// connection it accepted and answers one. Every read has a size cap and a deadline, and every
// failure is a KataError that names whose line it was. Loads nothing but node:net: `start`'s
// light path (src/shim/start-light.ts) uses it.
import { createConnection, type Socket } from "node:net";
import { KataError } from "./errors.js";

export interface JsonLineLimits {
  /** The longest line accepted, in bytes (without its newline). */
  maxBytes: number;
  /** For the whole exchange: from connecting (client) or from the call (server) to the line read. */
  timeoutMs: number;
}

export interface JsonLineCallOptions extends JsonLineLimits {
  /** Who answers, for messages: "the VM pool at /run/kata-ts/pool/pool.sock". */
  peer: string;
  /** What to do when nothing listens: "is `kata-ts pool serve` running?". */
  unreachableHint?: string;
}

export interface JsonLineReadOptions extends JsonLineLimits {
  /** What line is read, for messages: "a pool request", "start's hand-over". */
  what: string;
}

/** Why one line could not be read; each side words it (and picks its code) for its own role. */
type LineFailure = { kind: "deadline" | "too-long" | "closed" } | { kind: "not-json" | "broken"; cause: Error };

/**
 * Connects to `path`, sends `request` as one line and resolves with the first line the peer answers,
 * parsed. The socket is destroyed on every path. Codes: UNAVAILABLE (nothing listens, or the peer
 * closed or broke the connection before answering), DEADLINE_EXCEEDED, INTERNAL (the answer is too
 * long or not JSON: another program, or another build, listens there).
 */
export function callJsonLine(path: string, request: unknown, opts: JsonLineCallOptions): Promise<unknown> {
  const { peer } = opts;
  const line = `${JSON.stringify(request)}\n`;
  const sock = createConnection(path);
  let connected = false;
  sock.once("connect", () => {
    connected = true;
    sock.write(line);
  });
  const failure = (f: LineFailure): KataError => {
    switch (f.kind) {
      case "deadline":
        return new KataError("DEADLINE_EXCEEDED", `${peer} did not answer within ${opts.timeoutMs} ms`);
      case "too-long":
        return new KataError("INTERNAL", `${peer} sent more than ${opts.maxBytes} bytes without ending its answer; is another program listening on ${path}?`);
      case "not-json":
        return new KataError("INTERNAL", `${peer} answered a line that is not JSON; is another program listening on ${path}?`, { cause: f.cause });
      case "closed":
        return new KataError("UNAVAILABLE", `${peer} closed the connection without an answer`);
      case "broken":
        return connected
          ? new KataError("UNAVAILABLE", `lost the connection to ${peer} before its answer: ${f.cause.message}`, { cause: f.cause })
          : new KataError("UNAVAILABLE", `cannot connect to ${peer}: ${f.cause.message}${opts.unreachableHint === undefined ? "" : `; ${opts.unreachableHint}`}`, { cause: f.cause });
    }
  };
  return readLine(sock, opts, failure).finally(() => sock.destroy());
}

/**
 * Reads one line from a connection this process accepted and resolves with it parsed. The socket
 * stays open on every path: answer with answerJsonLine (an error answer too), which closes it.
 * Codes: DEADLINE_EXCEEDED, INVALID_ARGUMENT (too long, not JSON), UNAVAILABLE (the peer closed or
 * broke the connection first). Errors on the socket after the read are ignored (the answer's
 * write may meet a peer that has gone).
 */
export function readJsonLine(sock: Socket, opts: JsonLineReadOptions): Promise<unknown> {
  const { what } = opts;
  return readLine(sock, opts, (f) => {
    switch (f.kind) {
      case "deadline":
        return new KataError("DEADLINE_EXCEEDED", `${what} did not arrive within ${opts.timeoutMs} ms`);
      case "too-long":
        return new KataError("INVALID_ARGUMENT", `${what} is longer than ${opts.maxBytes} bytes`);
      case "not-json":
        return new KataError("INVALID_ARGUMENT", `${what} is not JSON: ${f.cause.message}`, { cause: f.cause });
      case "closed":
        return new KataError("UNAVAILABLE", `the connection closed before ${what} arrived`);
      case "broken":
        return new KataError("UNAVAILABLE", `the connection broke before ${what} arrived: ${f.cause.message}`, { cause: f.cause });
    }
  });
}

/** Sends `value` as the connection's one answer line and closes the socket once it is written. */
export function answerJsonLine(sock: Socket, value: unknown, graceMs = 5000): void {
  if (!sock.writable) {
    sock.destroy();
    return;
  }
  // Written into the peer's receive queue, the line survives the close. The grace timer ends a
  // connection whose peer does not read (its queue full), so no socket outlives its answer.
  const grace = setTimeout(() => sock.destroy(), graceMs).unref();
  sock.end(`${JSON.stringify(value)}\n`, () => {
    clearTimeout(grace);
    sock.destroy();
  });
}

function ignore(): void {
  // an error after the line was read: the caller's answer (or destroy) ends the socket
}

/** The first line of `sock`, parsed; bytes after it are not read. */
function readLine(sock: Socket, limits: JsonLineLimits, failure: (f: LineFailure) => KataError): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (): void => {
      clearTimeout(timer);
      sock.off("data", onData);
      sock.off("end", onClosed);
      sock.off("close", onClosed);
      sock.off("error", onError);
    };
    const fail = (f: LineFailure): void => {
      settle();
      reject(failure(f));
    };
    const onData = (chunk: Buffer | string): void => {
      const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      const nl = bytes.indexOf(0x0a);
      const part = nl < 0 ? bytes : bytes.subarray(0, nl);
      if (size + part.length > limits.maxBytes) return fail({ kind: "too-long" });
      chunks.push(part);
      size += part.length;
      if (nl < 0) return;
      settle();
      try {
        resolve(JSON.parse(Buffer.concat(chunks, size).toString("utf8")));
      } catch (err) {
        reject(failure({ kind: "not-json", cause: err as Error }));
      }
    };
    const onClosed = (): void => fail({ kind: "closed" });
    const onError = (err: Error): void => fail({ kind: "broken", cause: err });
    const timer = setTimeout(() => fail({ kind: "deadline" }), limits.timeoutMs);
    sock.on("error", ignore);
    sock.on("error", onError);
    sock.on("data", onData);
    sock.on("end", onClosed);
    sock.on("close", onClosed);
  });
}
