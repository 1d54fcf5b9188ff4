// The host side talks to an untrusted guest: a rogue ttRPC server answering with garbage must never
// throw out of our client. Every call settles (an answer, a TtrpcError, or its deadline) and the
// process carries on. Seeded: KATA_TS_FUZZ_SEED replays a failure.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { CheckResponseSchema, Health } from "../../src/protocol/gen/katats/agent/v1/health_pb.js";
import { ResponseSchema } from "../../src/protocol/gen/ttrpc/request_pb.js";
import { FrameDecoder, MESSAGE_LENGTH_MAX, TtrpcClient, TtrpcError, createClient, encodeFrame } from "../../src/protocol/ttrpc/index.js";
import { prng, withTempDir } from "./ttrpc-wire.js";

const CONNECTIONS = 4;
const CALLS_PER_CONNECTION = 500;

/** One rogue answer to request `id`: sometimes right, mostly wrong in some way. */
function rogueAnswer(id: number, rand: () => number): Buffer {
  const rb = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
  const ok = toBinary(ResponseSchema, create(ResponseSchema, { payload: toBinary(CheckResponseSchema, create(CheckResponseSchema, { status: 1 })) }));
  switch (Math.floor(rand() * 9)) {
    case 0:
      return encodeFrame({ streamId: id, type: 2, flags: 0 }, ok);
    case 1: // garbage where the Response should be
      return encodeFrame({ streamId: id, type: 2, flags: 0 }, rb(Math.floor(rand() * 100)));
    case 2: // a well-formed Response whose payload is not a CheckResponse
      return encodeFrame({ streamId: id, type: 2, flags: 0 }, toBinary(ResponseSchema, create(ResponseSchema, { payload: rb(1 + Math.floor(rand() * 40)) })));
    case 3: // an error status with an arbitrary code
      return encodeFrame(
        { streamId: id, type: 2, flags: 0 },
        toBinary(ResponseSchema, create(ResponseSchema, { status: { code: Math.floor(rand() * 2 ** 31) - 2 ** 30, message: "rogue" } })),
      );
    case 4: // answers for streams nobody asked about, and frames of other types
      return encodeFrame({ streamId: Math.floor(rand() * 2 ** 32), type: Math.floor(rand() * 256), flags: 0 }, rb(Math.floor(rand() * 30)));
    case 5: // random bytes: framing is lost from here on
      return rb(1 + Math.floor(rand() * 20));
    case 6: {
      // a length past the limit: the client must close the connection, not buffer or skip
      const header = Buffer.alloc(10);
      header.writeUInt32BE(MESSAGE_LENGTH_MAX + 1 + Math.floor(rand() * 2 ** 30), 0);
      header.writeUInt32BE(id, 4);
      header.writeUInt8(2, 8);
      return Buffer.concat([header, rb(100)]);
    }
    case 7: // the same answer twice
      return Buffer.concat([encodeFrame({ streamId: id, type: 2, flags: 0 }, ok), encodeFrame({ streamId: id, type: 2, flags: 0 }, ok)]);
    default: // silence: the deadline must end the call
      return Buffer.alloc(0);
  }
}

void test("ttrpc client fuzz: a rogue server's garbage never escapes the client; every call settles", async () => {
  const seed = Number(process.env.KATA_TS_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const rand = prng(seed);
  await withTempDir(async (dir) => {
    const path = `${dir}/rogue.sock`;
    const sockets = new Set<net.Socket>();
    const rogue = net.createServer((sock) => {
      sockets.add(sock);
      sock.on("error", () => undefined);
      const dec = new FrameDecoder();
      // The first call on each connection is answered properly, so that "some calls still succeed
      // among the garbage" holds for every seed (random bytes early on lose the framing for good).
      let first = true;
      sock.on("data", (chunk: Buffer) => {
        for (const ev of dec.push(chunk)) {
          if (ev.kind !== "frame") continue;
          if (first) {
            first = false;
            sock.write(rogueAnswer(ev.frame.streamId, () => 0));
          } else if (rand() < 0.002) sock.destroy(); // and now and then hang up mid-stream
          else sock.write(rogueAnswer(ev.frame.streamId, rand));
        }
      });
    });
    await new Promise<void>((resolve) => rogue.listen(path, resolve));
    const clients: TtrpcClient[] = [];
    try {
      let answered = 0;
      let failed = 0;
      await Promise.all(
        Array.from({ length: CONNECTIONS }, async () => {
          const client = await TtrpcClient.connect(path);
          clients.push(client);
          const health = createClient(client, Health);
          const results = await Promise.allSettled(
            Array.from({ length: CALLS_PER_CONNECTION }, () => health.check({}, { timeoutMs: 1500 })),
          );
          for (const r of results) {
            if (r.status === "fulfilled") answered++;
            else {
              assert.ok(r.reason instanceof TtrpcError, `seed ${seed}: a call failed with ${String(r.reason)}`);
              failed++;
            }
          }
        }),
      );
      assert.equal(answered + failed, CONNECTIONS * CALLS_PER_CONNECTION);
      assert.ok(answered > 0 && failed > 0, `seed ${seed}: answered ${answered}, failed ${failed}`);
    } finally {
      for (const c of clients) c.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => rogue.close(() => resolve()));
    }
  });
});
