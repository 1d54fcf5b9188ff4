// The frame codec against hand-written wire bytes (containerd/ttrpc channel.go layout).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  FrameDecoder,
  MESSAGE_HEADER_LENGTH,
  MESSAGE_LENGTH_MAX,
  MESSAGE_TYPE_REQUEST,
  MESSAGE_TYPE_RESPONSE,
  encodeFrame,
} from "../../src/protocol/ttrpc/index.js";
import { isKataError } from "../../src/util/errors.js";

void test("frame: constants mirror channel.go", () => {
  assert.equal(MESSAGE_HEADER_LENGTH, 10);
  assert.equal(MESSAGE_LENGTH_MAX, 4 * 1024 * 1024);
  assert.equal(MESSAGE_TYPE_REQUEST, 1);
  assert.equal(MESSAGE_TYPE_RESPONSE, 2);
});

void test("frame: encode writes length, stream id (big-endian), type, flags, payload", () => {
  const buf = encodeFrame({ streamId: 0x01020305, type: MESSAGE_TYPE_RESPONSE, flags: 0 }, Buffer.from("abc"));
  assert.deepEqual([...buf], [0, 0, 0, 3, 1, 2, 3, 5, 2, 0, 0x61, 0x62, 0x63]);
});

void test("frame: decoder reassembles frames split at every byte and frames sharing a chunk", () => {
  const a = encodeFrame({ streamId: 1, type: 1, flags: 0 }, Buffer.from("hello"));
  const b = encodeFrame({ streamId: 3, type: 1, flags: 0 }, Buffer.alloc(0));
  const c = encodeFrame({ streamId: 5, type: 2, flags: 7 }, Buffer.from("world!"));
  const all = Buffer.concat([a, b, c]);

  const oneByOne = new FrameDecoder();
  const seen = [];
  for (let i = 0; i < all.length; i++) seen.push(...oneByOne.push(all.subarray(i, i + 1)));
  const together = new FrameDecoder().push(all);
  for (const events of [seen, together]) {
    assert.deepEqual(
      events.map((e) => (e.kind === "frame" ? [e.frame.streamId, e.frame.type, e.frame.flags, e.frame.payload.toString()] : e.kind)),
      [
        [1, 1, 0, "hello"],
        [3, 1, 0, ""],
        [5, 2, 7, "world!"],
      ],
    );
  }
  assert.equal(oneByOne.idle, true);
});

void test("frame: decoder reports an oversized frame at its header and skips its payload", () => {
  const dec = new FrameDecoder(8);
  const big = Buffer.concat([Buffer.from([0, 0, 0, 20, 0, 0, 0, 9, 1, 0]), Buffer.alloc(20, 0xee)]);
  const next = encodeFrame({ streamId: 11, type: 1, flags: 0 }, Buffer.from("ok"));
  const first = dec.push(big.subarray(0, 12));
  assert.deepEqual(first, [{ kind: "oversized", header: { streamId: 9, type: 1, flags: 0 }, length: 20 }]);
  assert.equal(dec.idle, false);
  const rest = dec.push(Buffer.concat([big.subarray(12), next]));
  assert.equal(rest.length, 1);
  assert.ok(rest[0]?.kind === "frame" && rest[0].frame.streamId === 11 && rest[0].frame.payload.toString() === "ok");
});

void test("frame: encode refuses payloads over 4 MiB with RESOURCE_EXHAUSTED", () => {
  assert.throws(
    () => encodeFrame({ streamId: 1, type: 1, flags: 0 }, new Uint8Array(MESSAGE_LENGTH_MAX + 1)),
    (err: unknown) => isKataError(err, "RESOURCE_EXHAUSTED"),
  );
  assert.equal(encodeFrame({ streamId: 1, type: 1, flags: 0 }, new Uint8Array(MESSAGE_LENGTH_MAX)).length, MESSAGE_LENGTH_MAX + 10);
});
