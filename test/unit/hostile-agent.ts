// A fake guest agent that speaks ttRPC badly on purpose, run as its own process over a real unix
// socket (as QEMU's agent socket is): `node hostile-agent.js SOCKET MODE`. It prints "listening"
// when ready, "peer-closed" when the host end closes the connection, and on SIGUSR2 the number
// of requests it answered ("answered N"). Modes:
//   trickle   answers every request with a ~4 MiB ReadStreamResponse written one byte per write
//   oversized answers the first request with a frame header claiming 4 MiB + 1, and nothing after
//   oom-flood answers every GetOOMEvent at once: one id in ten is "known", the rest "ghost-<n>"
import net from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { GetOOMEventResponseSchema, ReadStreamResponseSchema } from "../../src/protocol/gen/katats/agent/v1/agent_pb.js";
import { ResponseSchema } from "../../src/protocol/gen/ttrpc/request_pb.js";
import { FrameDecoder, MESSAGE_LENGTH_MAX, MESSAGE_TYPE_RESPONSE, encodeFrame } from "../../src/protocol/ttrpc/index.js";

export const TRICKLE_DATA_BYTES = MESSAGE_LENGTH_MAX - 64;
const TRICKLE_WRITE_BYTES = 1;

const [socketPath, mode] = process.argv.slice(2);
if (socketPath === undefined || !["trickle", "oversized", "oom-flood"].includes(mode ?? "")) {
  process.stderr.write("usage: hostile-agent SOCKET trickle|oversized|oom-flood\n");
  process.exit(2);
}

let answered = 0;
process.on("SIGUSR2", () => process.stdout.write(`answered ${answered}\n`));

function response(streamId: number, payload: Uint8Array): Buffer {
  return encodeFrame({ streamId, type: MESSAGE_TYPE_RESPONSE, flags: 0 }, toBinary(ResponseSchema, create(ResponseSchema, { payload })));
}

async function trickle(sock: net.Socket, frame: Buffer): Promise<void> {
  for (let off = 0; off < frame.length && !sock.destroyed; off += TRICKLE_WRITE_BYTES) {
    // Wait for each write to reach the kernel, so the host really receives small pieces.
    await new Promise<void>((resolve) => sock.write(frame.subarray(off, off + TRICKLE_WRITE_BYTES), () => resolve()));
  }
}

let oomCount = 0;
const server = net.createServer((sock) => {
  sock.on("error", () => undefined);
  sock.on("close", () => process.stdout.write("peer-closed\n"));
  const decoder = new FrameDecoder();
  let work = Promise.resolve();
  sock.on("data", (chunk: Buffer) => {
    for (const ev of decoder.push(chunk)) {
      if (ev.kind !== "frame") continue;
      const id = ev.frame.streamId;
      answered++;
      if (mode === "trickle") {
        const data = new Uint8Array(TRICKLE_DATA_BYTES).fill(0x61);
        const frame = response(id, toBinary(ReadStreamResponseSchema, create(ReadStreamResponseSchema, { data })));
        work = work.then(() => trickle(sock, frame));
      } else if (mode === "oversized") {
        if (answered > 1) continue;
        const header = Buffer.alloc(10);
        header.writeUInt32BE(MESSAGE_LENGTH_MAX + 1, 0);
        header.writeUInt32BE(id, 4);
        header.writeUInt8(MESSAGE_TYPE_RESPONSE, 8);
        sock.write(header);
      } else {
        oomCount++;
        const containerId = oomCount % 10 === 0 ? "known" : `ghost-${oomCount}`;
        sock.write(response(id, toBinary(GetOOMEventResponseSchema, create(GetOOMEventResponseSchema, { containerId }))));
      }
    }
  });
});
server.listen(socketPath, () => process.stdout.write("listening\n"));
process.on("SIGTERM", () => {
  server.close();
  process.exit(0);
});
