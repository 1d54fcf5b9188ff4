// The host side of the hybrid vsock that Cloud Hypervisor and Firecracker expose: a unix socket
// where each connection starts with `CONNECT <port>\n` from the host and `OK <host port>\n` from
// the VMM once the guest accepted; from then on the stream is the guest connection. When nothing
// in the guest listens on the port yet, the VMM closes the connection (or answers something other
// than OK), so the dialer retries until its deadline: a booting guest opens the port late.
import net from "node:net";
import { KataError } from "../../util/errors.js";

/** The longest acknowledgement line accepted ("OK 4294967295\n" is 14 bytes). */
const maxAckBytes = 64;
const retryPauseMs = 50;

export interface DialOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

/** One attempt: connect, ask for `port`, wait for OK. Rejects UNAVAILABLE when the VMM refuses. */
export function connectHybridVsock(path: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection(path);
    let ack = Buffer.alloc(0);
    let settled = false;
    const fail = (err: KataError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    };
    const timer = setTimeout(
      () => fail(new KataError("DEADLINE_EXCEEDED", `no answer to CONNECT ${port} on hybrid vsock ${path} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer): void => {
      ack = Buffer.concat([ack, chunk]);
      const nl = ack.indexOf(0x0a);
      if (nl < 0) {
        if (ack.length > maxAckBytes) fail(new KataError("INTERNAL", `hybrid vsock ${path} sent ${ack.length} bytes without ending its acknowledgement line`));
        return;
      }
      const line = ack.subarray(0, nl).toString("latin1");
      if (!/^OK \d+$/.test(line)) {
        fail(new KataError("UNAVAILABLE", `hybrid vsock ${path} refused CONNECT ${port}: ${JSON.stringify(line.slice(0, maxAckBytes))}`));
        return;
      }
      settled = true;
      clearTimeout(timer);
      sock.off("data", onData);
      sock.off("error", onError);
      sock.off("close", onClose);
      sock.pause();
      // Bytes the guest sent right after the acknowledgement belong to the caller's stream.
      const rest = ack.subarray(nl + 1);
      if (rest.length > 0) sock.unshift(rest);
      resolve(sock);
    };
    const onError = (err: Error): void =>
      fail(new KataError("UNAVAILABLE", `cannot connect to hybrid vsock ${path}: ${err.message}`, { cause: err }));
    const onClose = (): void => fail(new KataError("UNAVAILABLE", `hybrid vsock ${path} closed the connection before acknowledging CONNECT ${port} (nothing listens on that guest port yet)`));
    sock.on("data", onData);
    sock.on("error", onError);
    sock.on("close", onClose);
    sock.once("connect", () => sock.write(`CONNECT ${port}\n`));
  });
}

/** Retry connectHybridVsock until the guest accepts or the deadline passes. */
export async function dialHybridVsock(path: string, port: number, opts: DialOptions): Promise<net.Socket> {
  const deadline = Date.now() + opts.timeoutMs;
  let last: unknown;
  for (;;) {
    if (opts.signal?.aborted === true) throw new KataError("CANCELLED", `dialing hybrid vsock ${path} cancelled`);
    const left = deadline - Date.now();
    const expired = (cause: unknown): KataError =>
      new KataError("DEADLINE_EXCEEDED", `guest port ${port} on hybrid vsock ${path} did not accept within ${opts.timeoutMs} ms`, { cause });
    if (left <= 0) throw expired(last);
    try {
      return await connectHybridVsock(path, port, left);
    } catch (err) {
      // The attempt had what was left of the dial's time: its deadline is the dial's, said the same
      // way wherever it falls (an attempt begun a few ms before the end, then a slow answer).
      if (err instanceof KataError && err.code === "DEADLINE_EXCEEDED") throw expired(last ?? err);
      if (!(err instanceof KataError) || err.code !== "UNAVAILABLE") throw err;
      last = err;
    }
    await new Promise((r) => setTimeout(r, Math.min(retryPauseMs, Math.max(deadline - Date.now(), 0))));
  }
}
