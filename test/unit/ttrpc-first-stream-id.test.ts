// TtrpcClient's firstStreamId: a client that takes over a server another client used (a
// reattached pod's agent) numbers its calls from there, so that a late answer meant for the old
// client (stream ids from 1) matches none of its calls and is ignored. Over a real unix socket.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { ResponseSchema } from "../../src/protocol/gen/ttrpc/request_pb.js";
import { encodeFrame, FrameDecoder, MESSAGE_TYPE_RESPONSE, TtrpcClient } from "../../src/protocol/ttrpc/index.js";
import { isKataError } from "../../src/util/errors.js";
import { withTempDir } from "./ttrpc-wire.js";

function response(streamId: number, payload: Uint8Array): Buffer {
  return encodeFrame({ streamId, type: MESSAGE_TYPE_RESPONSE, flags: 0 }, Buffer.from(toBinary(ResponseSchema, create(ResponseSchema, { payload }))));
}

void test("calls start at firstStreamId; an answer on an old client's id is ignored, the call's own answered", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "s.sock");
    const seen: number[] = [];
    const server = net.createServer((sock) => {
      const dec = new FrameDecoder();
      sock.on("data", (b: Buffer) => {
        for (const ev of dec.push(b)) {
          if (ev.kind !== "frame") continue;
          seen.push(ev.frame.streamId);
          // A stale answer for the old client's first call, then this call's own.
          sock.write(Buffer.concat([response(1, Uint8Array.of(9)), response(ev.frame.streamId, Uint8Array.of(7))]));
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      const first = 2 * 0x2000_0000 + 1;
      const client = await TtrpcClient.connect(path, { timeoutMs: 2000, firstStreamId: first });
      assert.deepEqual([...(await client.call("s", "m", new Uint8Array(), { timeoutMs: 2000 }))], [7]);
      assert.deepEqual([...(await client.call("s", "m", new Uint8Array(), { timeoutMs: 2000 }))], [7]);
      assert.deepEqual(seen, [first, first + 2]);
      client.close();
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

void test("an even or too large firstStreamId is refused", () => {
  const sock = new net.Socket();
  assert.throws(() => new TtrpcClient(sock, 2), (e: unknown) => isKataError(e, "INVALID_ARGUMENT"));
  assert.throws(() => new TtrpcClient(sock, 2 ** 32 + 1), (e: unknown) => isKataError(e, "INVALID_ARGUMENT"));
  sock.destroy();
});
