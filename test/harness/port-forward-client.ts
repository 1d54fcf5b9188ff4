// A port-forward client as kubectl's websocket transport speaks it to a CRI streaming server
// (containerd 1.6's pkg/cri/streaming: subprotocol v4.channel.k8s.io, `?port=N`). Each binary
// message starts with a channel byte: 0 is the port's data, 1 its error stream; the server first
// writes the port (uint16, little endian) on both. One request in, everything the pod answered
// out, until the server closes. No npm package for this is kept up for Node 20, and Node 20 has no
// WebSocket client without a flag, so this is RFC 6455's client side, just what the test needs.
//
// CLI (the streaming server listens on 127.0.0.1 in containerd's netns, so the test runs this
// under nsenter): node port-forward-client.js URL PORT < request > answer; the error stream goes
// to stderr and makes the exit code 1.
import { createHash, randomBytes } from "node:crypto";
import { request } from "node:http";
import type { Socket } from "node:net";
import { pathToFileURL } from "node:url";

const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const SUBPROTOCOL = "v4.channel.k8s.io";
const OP = { continuation: 0, binary: 2, close: 8, ping: 9, pong: 10 } as const;

export interface PortForwardAnswer {
  data: Buffer;
  error: string;
}

function frame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4);
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len]) : len < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  if (len >= 126 && len < 65536) {
    head[0] = 0x80 | opcode;
    head[1] = 0x80 | 126;
    head.writeUInt16BE(len, 2);
  } else if (len >= 65536) {
    head[0] = 0x80 | opcode;
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  const body = Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] ?? 0)));
  return Buffer.concat([head, mask, body]);
}

/** Splits complete server frames off `buf` (servers never mask); answers the frames and the rest. */
function parseFrames(buf: Buffer): { frames: { fin: boolean; opcode: number; payload: Buffer }[]; rest: Buffer } {
  const frames = [];
  let off = 0;
  for (;;) {
    if (buf.length - off < 2) break;
    const b0 = buf[off] ?? 0;
    const b1 = buf[off + 1] ?? 0;
    let len = b1 & 0x7f;
    let at = off + 2;
    if (len === 126) {
      if (buf.length - at < 2) break;
      len = buf.readUInt16BE(at);
      at += 2;
    } else if (len === 127) {
      if (buf.length - at < 8) break;
      len = Number(buf.readBigUInt64BE(at));
      at += 8;
    }
    if (buf.length - at < len) break;
    frames.push({ fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, payload: buf.subarray(at, at + len) });
    off = at + len;
  }
  return { frames, rest: buf.subarray(off) };
}

/** Opens the port-forward URL for `port`, writes `input` to it, and collects the answer until the server closes. */
export function portForwardOnce(url: string, port: number, input: Buffer, timeoutMs = 60_000): Promise<PortForwardAnswer> {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString("base64");
    const target = new URL(url);
    target.searchParams.append("port", String(port));
    const req = request(target, {
      headers: { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": key, "Sec-WebSocket-Protocol": SUBPROTOCOL },
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`port-forward to ${url} port ${port}: no close from the server within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.on("response", (res) => {
      clearTimeout(timer);
      reject(new Error(`port-forward to ${url}: HTTP ${res.statusCode ?? "?"} instead of a websocket upgrade`));
      res.resume();
    });
    req.on("upgrade", (res, socket: Socket, head: Buffer) => {
      const accept = createHash("sha1").update(key + WS_GUID).digest("base64");
      if (res.headers["sec-websocket-accept"] !== accept || res.headers["sec-websocket-protocol"] !== SUBPROTOCOL) {
        clearTimeout(timer);
        socket.destroy();
        reject(new Error(`port-forward to ${url}: bad upgrade (accept ${String(res.headers["sec-websocket-accept"])}, protocol ${String(res.headers["sec-websocket-protocol"])})`));
        return;
      }
      const channels: Buffer[][] = [[], []];
      let pending = head;
      let message: Buffer[] = [];
      const finish = (): void => {
        clearTimeout(timer);
        socket.destroy();
        // Each channel's first two bytes are the port number the server announces.
        const [data, error] = channels.map((parts) => Buffer.concat(parts).subarray(2));
        resolve({ data: data ?? Buffer.alloc(0), error: (error ?? Buffer.alloc(0)).toString() });
      };
      const onData = (chunk: Buffer): void => {
        const { frames, rest } = parseFrames(Buffer.concat([pending, chunk]));
        pending = rest;
        for (const f of frames) {
          if (f.opcode === OP.close) {
            socket.write(frame(OP.close, f.payload.subarray(0, 2)));
            finish();
            return;
          }
          if (f.opcode === OP.ping) socket.write(frame(OP.pong, f.payload));
          if (f.opcode !== OP.binary && f.opcode !== OP.continuation) continue;
          message.push(f.payload);
          if (!f.fin) continue;
          const whole = Buffer.concat(message);
          message = [];
          const channel = whole[0];
          if (channel === 0 || channel === 1) channels[channel]?.push(whole.subarray(1));
        }
      };
      socket.on("data", onData);
      socket.on("close", finish);
      socket.on("error", () => undefined);
      onData(Buffer.alloc(0));
      socket.write(frame(OP.binary, Buffer.concat([Buffer.from([0]), input])));
    });
    req.end();
  });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [url, port] = process.argv.slice(2);
  if (url === undefined || port === undefined || !/^\d+$/.test(port)) {
    process.stderr.write("usage: port-forward-client URL PORT < request\n");
    process.exit(2);
  }
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const answer = await portForwardOnce(url, Number(port), Buffer.concat(chunks));
  process.stdout.write(answer.data);
  process.stderr.write(answer.error);
  process.exitCode = answer.error === "" ? 0 : 1;
}
