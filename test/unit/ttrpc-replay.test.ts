// A call handed over between server processes (the node-level shim server's restarts): the server
// that read it tells its observer the request as read and never answers; the next server replays
// it on the same connection and stream, and the client, still waiting, gets its answer.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { join } from "node:path";
import { Duplex } from "node:stream";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Task, WaitRequestSchema, WaitResponseSchema } from "../../src/protocol/gen/containerd/task/v2/shim_pb.js";
import { TtrpcServer, type CallObserver } from "../../src/protocol/ttrpc/index.js";
import { decodeResponse, RawConn, requestBytes, withTempDir } from "./ttrpc-wire.js";

const TASK = "containerd.task.v2.Task";

interface Recorder {
  observer: CallObserver;
  calls: Array<{ streamId: number; service: string; method: string; request: Uint8Array }>;
  ends: number[];
}

function recorder(): Recorder {
  const r: Recorder = {
    calls: [],
    ends: [],
    observer: {
      started: (streamId, service, method, request) => r.calls.push({ streamId, service, method, request: Uint8Array.from(request) }),
      ended: (streamId) => r.ends.push(streamId),
    },
  };
  return r;
}

void test("a Wait read by one server and never answered is answered by the next on the same stream", async () => {
  await withTempDir(async (dir) => {
    const waitPayload = toBinary(WaitRequestSchema, create(WaitRequestSchema, { id: "c1", execId: "" }));
    // The first server: its Wait never returns, and what it writes goes nowhere (it is about to die).
    const first = new TtrpcServer().register(Task, { wait: () => new Promise<never>(() => undefined) });
    const firstSeen = recorder();
    const deadEnd = new Duplex({ read() {}, write(_chunk, _enc, cb) { cb(); } });
    first.serve(deadEnd, firstSeen.observer);
    deadEnd.push(requestBytes(5, TASK, "Wait", waitPayload));
    await new Promise((r) => setImmediate(r));
    assert.equal(firstSeen.calls.length, 1, "the observer is told of the call");
    assert.deepEqual({ streamId: firstSeen.calls[0]?.streamId, service: firstSeen.calls[0]?.service, method: firstSeen.calls[0]?.method }, { streamId: 5, service: TASK, method: "Wait" });
    assert.deepEqual(firstSeen.ends, [], "and not of an end: it was never answered");

    // The next server gets the connection the client still waits on, and replays the call.
    const next = new TtrpcServer().register(Task, { wait: (req) => Promise.resolve({ exitStatus: req.id === "c1" ? 137 : 1 }) });
    const nextSeen = recorder();
    const path = join(dir, "s.sock");
    const listener = net.createServer((sock) => next.serve(sock, nextSeen.observer).replay(5, firstSeen.calls[0]?.request ?? new Uint8Array()));
    await new Promise<void>((r) => listener.listen(path, r));
    const client = await RawConn.open(path);
    try {
      const [frame] = await client.waitFrames(1);
      assert.ok(frame !== undefined, "an answer arrives");
      assert.equal(frame.streamId, 5, "on the stream the client asked on");
      const answer = decodeResponse(frame);
      assert.equal(answer.code, 0, answer.message);
      assert.equal(fromBinary(WaitResponseSchema, answer.payload).exitStatus, 137, "the replayed request's own answer");
      assert.deepEqual(nextSeen.calls.map((c) => c.streamId), [5]);
      assert.deepEqual(nextSeen.ends, [5], "the replayed call ends like any other");
    } finally {
      await client.close();
      await next.close();
      await first.close();
      await new Promise<void>((r) => listener.close(() => r()));
    }
  });
});

void test("drain does not wait for the calls it is told are handed over", async () => {
  const server = new TtrpcServer().register(Task, { wait: () => new Promise<never>(() => undefined) });
  const end = new Duplex({ read() {}, write(_chunk, _enc, cb) { cb(); } });
  server.serve(end);
  end.push(requestBytes(1, TASK, "Wait", toBinary(WaitRequestSchema, create(WaitRequestSchema, { id: "c1" }))));
  await new Promise((r) => setImmediate(r));
  const t0 = Date.now();
  await server.drain(2000, (service, method) => service === TASK && method === "Wait");
  assert.ok(Date.now() - t0 < 1000, "a handed-over Wait does not hold the drain");
  const t1 = Date.now();
  await server.drain(300);
  assert.ok(Date.now() - t1 >= 250, "without the exception the drain waits for it, up to its deadline");
  await server.close();
});
