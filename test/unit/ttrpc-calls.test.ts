// Our ttRPC client against our ttRPC server over a real unix socket: typed calls, metadata,
// UNIMPLEMENTED, error mapping, odd stream ids, connection close.
import { test } from "node:test";
import assert from "node:assert/strict";
import { access } from "node:fs/promises";
import { Health, CheckResponse_ServingStatus } from "../../src/protocol/gen/katats/agent/v1/health_pb.js";
import { AgentService } from "../../src/protocol/gen/katats/agent/v1/agent_pb.js";
import { Task } from "../../src/protocol/gen/containerd/task/v2/shim_pb.js";
import { Code, TtrpcClient, TtrpcError, TtrpcServer, createClient } from "../../src/protocol/ttrpc/index.js";
import { KataError } from "../../src/util/errors.js";
import { RawConn, decodeResponse, listenTemp, requestBytes } from "./ttrpc-wire.js";

function isStatus(status: number) {
  return (err: unknown) => err instanceof TtrpcError && err.status === status;
}

void test("ttrpc: typed client calls and metadata reach the handler", async () => {
  const server = new TtrpcServer().register(Health, {
    check: async () => ({ status: CheckResponse_ServingStatus.SERVING }),
    version: async (_req, ctx) => ({ agentVersion: `ns=${ctx.metadata.get("containerd-namespace-ttrpc") ?? "?"}`, uptimeSeconds: 12.5 }),
  });
  const { path, dispose } = await listenTemp(server);
  const client = await TtrpcClient.connect(`unix://${path}`, { timeoutMs: 2000 });
  try {
    const health = createClient(client, Health);
    assert.equal((await health.check({})).status, CheckResponse_ServingStatus.SERVING);
    const v = await health.version({}, { metadata: { "containerd-namespace-ttrpc": "k8s.io" }, timeoutMs: 2000 });
    assert.equal(v.agentVersion, "ns=k8s.io");
    assert.equal(v.uptimeSeconds, 12.5);
    const v2 = await health.version({}, { metadata: new Map([["containerd-namespace-ttrpc", "default"]]) });
    assert.equal(v2.agentVersion, "ns=default");
  } finally {
    client.close();
    await client.closed;
    await dispose();
  }
  await assert.rejects(access(path), "socket file removed by close()");
});

void test("ttrpc: unknown service, unknown method and unimplemented method answer UNIMPLEMENTED", async () => {
  const server = new TtrpcServer().register(Health, { check: async () => ({}) });
  const { path, dispose } = await listenTemp(server);
  const client = await TtrpcClient.connect(path);
  try {
    await assert.rejects(createClient(client, Task).state({ id: "x" }), isStatus(Code.UNIMPLEMENTED));
    await assert.rejects(client.call("katats.agent.v1.Health", "NoSuch", new Uint8Array()), isStatus(Code.UNIMPLEMENTED));
    await assert.rejects(createClient(client, Health).version({}), (err: unknown) => {
      assert.ok(err instanceof TtrpcError);
      assert.equal(err.status, Code.UNIMPLEMENTED);
      assert.equal(err.code, "UNIMPLEMENTED");
      return true;
    });
    assert.equal((await createClient(client, Health).check({})).status, CheckResponse_ServingStatus.UNKNOWN);
  } finally {
    client.close();
    await dispose();
  }
});

void test("ttrpc: handler errors map KataError codes to gRPC codes and back", async () => {
  const thrown: Record<string, unknown> = {
    a: new KataError("NOT_FOUND", "container a not found"),
    b: new KataError("FAILED_PRECONDITION", "cannot start b: it is running"),
    c: new KataError("ALREADY_EXISTS", "c exists"),
    d: new TtrpcError(Code.OUT_OF_RANGE, "raw status"),
    e: new Error("plain bug"),
  };
  const server = new TtrpcServer().register(AgentService, {
    startContainer: async (req) => {
      throw thrown[req.containerId];
    },
  });
  const { path, dispose } = await listenTemp(server);
  const client = await TtrpcClient.connect(path);
  const agent = createClient(client, AgentService);
  try {
    const expected: [string, number, string][] = [
      ["a", Code.NOT_FOUND, "NOT_FOUND"],
      ["b", Code.FAILED_PRECONDITION, "FAILED_PRECONDITION"],
      ["c", Code.ALREADY_EXISTS, "ALREADY_EXISTS"],
      ["d", Code.OUT_OF_RANGE, "INTERNAL"],
      ["e", Code.UNKNOWN, "INTERNAL"],
    ];
    for (const [id, status, code] of expected) {
      await assert.rejects(agent.startContainer({ containerId: id }), (err: unknown) => {
        assert.ok(err instanceof TtrpcError && err instanceof KataError);
        assert.equal(err.status, status, id);
        assert.equal(err.code, code, id);
        assert.equal(err.message, (thrown[id] as Error).message);
        return true;
      });
    }
  } finally {
    client.close();
    await dispose();
  }
});

void test("ttrpc: server rejects even stream ids and undecodable requests, and keeps serving", async () => {
  const server = new TtrpcServer().register(Health, { check: async () => ({ status: CheckResponse_ServingStatus.SERVING }) });
  const { path, dispose } = await listenTemp(server);
  const raw = await RawConn.open(path);
  try {
    raw.write(requestBytes(2, "katats.agent.v1.Health", "Check"));
    raw.write(requestBytes(0, "katats.agent.v1.Health", "Check"));
    raw.write(Buffer.from([0, 0, 0, 3, 0, 0, 0, 5, 1, 0, 0xff, 0xff, 0xff])); // id 5: not a Request
    raw.write(requestBytes(7, "katats.agent.v1.Health", "Check", new Uint8Array([0x08]))); // truncated CheckRequest
    raw.write(requestBytes(9, "katats.agent.v1.Health", "Check"));
    const frames = await raw.waitFrames(5);
    const byId = new Map(frames.map((f) => [f.streamId, decodeResponse(f)]));
    assert.equal(byId.get(2)?.code, Code.INVALID_ARGUMENT);
    assert.equal(byId.get(0)?.code, Code.INVALID_ARGUMENT);
    assert.equal(byId.get(5)?.code, Code.INVALID_ARGUMENT);
    assert.equal(byId.get(7)?.code, Code.INVALID_ARGUMENT);
    assert.equal(byId.get(9)?.code, Code.OK);
    assert.deepEqual([...(byId.get(9)?.payload ?? [])], [0x08, 0x01]); // CheckResponse{status: SERVING}
    assert.ok(frames.every((f) => f.type === 2 && f.flags === 0));
  } finally {
    await raw.close();
    await dispose();
  }
});

void test("ttrpc: client uses odd stream ids 1, 3, 5, ...", async () => {
  const seen: number[] = [];
  const server = new TtrpcServer();
  const { path, dispose } = await listenTemp(server);
  // A raw server-side view: wrap serve() to observe frames as they arrive.
  const { createServer } = await import("node:net");
  const { FrameDecoder } = await import("../../src/protocol/ttrpc/index.js");
  const spyPath = `${path}.spy`;
  const spy = createServer((sock) => {
    const dec = new FrameDecoder();
    sock.on("data", (chunk: Buffer) => {
      for (const ev of dec.push(chunk)) if (ev.kind === "frame") seen.push(ev.frame.streamId);
    });
    server.serve(sock);
  });
  await new Promise<void>((resolve) => spy.listen(spyPath, resolve));
  const client = await TtrpcClient.connect(spyPath);
  try {
    for (let i = 0; i < 4; i++) {
      await assert.rejects(client.call("x.Y", "Z", new Uint8Array()), isStatus(Code.UNIMPLEMENTED));
    }
    assert.deepEqual(seen, [1, 3, 5, 7]);
  } finally {
    client.close();
    await new Promise<void>((resolve) => spy.close(() => resolve()));
    await dispose();
  }
});

void test("ttrpc: closing the connection fails pending calls with UNAVAILABLE and aborts handlers", async () => {
  let aborted: unknown;
  let started!: () => void;
  const handlerStarted = new Promise<void>((r) => (started = r));
  const server = new TtrpcServer().register(AgentService, {
    waitProcess: (_req, ctx) =>
      new Promise((_resolve, reject) => {
        started();
        ctx.signal.addEventListener("abort", () => {
          aborted = ctx.signal.reason;
          reject(ctx.signal.reason as Error);
        });
      }),
  });
  const { path, dispose } = await listenTemp(server);
  const client = await TtrpcClient.connect(path);
  const agent = createClient(client, AgentService);
  try {
    const pending = Promise.allSettled([agent.waitProcess({ containerId: "a" }), agent.waitProcess({ containerId: "b" })]);
    await handlerStarted;
    await server.close(); // server side drops the connection
    for (const r of await pending) {
      assert.equal(r.status, "rejected");
      assert.ok(isStatus(Code.UNAVAILABLE)(r.reason));
    }
    await client.closed;
    assert.ok(aborted instanceof TtrpcError && aborted.status === Code.CANCELLED);
    await assert.rejects(agent.waitProcess({}), isStatus(Code.UNAVAILABLE), "calls after close fail at once");
  } finally {
    client.close();
    await dispose();
  }
});

void test("ttrpc: client.close() fails its own pending calls with UNAVAILABLE", async () => {
  const server = new TtrpcServer().register(AgentService, { getOOMEvent: () => new Promise(() => undefined) });
  const { path, dispose } = await listenTemp(server);
  const client = await TtrpcClient.connect(path);
  try {
    const p = createClient(client, AgentService).getOOMEvent({});
    client.close();
    await assert.rejects(p, isStatus(Code.UNAVAILABLE));
    await client.closed;
  } finally {
    await dispose();
  }
});

void test("ttrpc: connect to a missing socket fails with UNAVAILABLE", async () => {
  await assert.rejects(TtrpcClient.connect("/nonexistent/kata-ts/ttrpc.sock", { timeoutMs: 1000 }), isStatus(Code.UNAVAILABLE));
});

void test("ttrpc: works over any Duplex (a pipe pair, as inside the guest), not only sockets", async () => {
  const { Duplex, PassThrough } = await import("node:stream");
  const toServer = new PassThrough();
  const toClient = new PassThrough();
  const serverSide = Duplex.from({ readable: toServer, writable: toClient });
  const clientSide = Duplex.from({ readable: toClient, writable: toServer });
  const server = new TtrpcServer().register(Health, { check: async () => ({ status: CheckResponse_ServingStatus.SERVING }) });
  server.serve(serverSide);
  const client = new TtrpcClient(clientSide);
  try {
    const res = await Promise.all([1, 2, 3].map(() => createClient(client, Health).check({}, { timeoutMs: 5000 })));
    assert.ok(res.every((r) => r.status === CheckResponse_ServingStatus.SERVING));
  } finally {
    client.close();
    await server.close();
  }
  assert.equal(serverSide.destroyed, true, "server.close() destroys the streams it serves");
});

void test("ttrpc: finished calls are published on the diagnostics channels", async () => {
  const { subscribe, unsubscribe } = await import("node:diagnostics_channel");
  const { CLIENT_CALL_CHANNEL, SERVER_CALL_CHANNEL } = await import("../../src/protocol/ttrpc/index.js");
  const seen: { side: string; method: string; status: number }[] = [];
  const onServer = (m: unknown): void => void seen.push({ side: "server", ...(m as { method: string; status: number }) });
  const onClient = (m: unknown): void => void seen.push({ side: "client", ...(m as { method: string; status: number }) });
  subscribe(SERVER_CALL_CHANNEL, onServer);
  subscribe(CLIENT_CALL_CHANNEL, onClient);
  const server = new TtrpcServer().register(Health, { check: async () => ({}) });
  const { path, dispose } = await listenTemp(server);
  const client = await TtrpcClient.connect(path);
  try {
    await createClient(client, Health).check({});
    await assert.rejects(createClient(client, Health).version({}));
    const summary = seen.map((e) => `${e.side} ${e.method} ${e.status}`).sort();
    assert.deepEqual(summary, ["client Check 0", "client Version 12", "server Check 0", "server Version 12"]);
  } finally {
    unsubscribe(SERVER_CALL_CHANNEL, onServer);
    unsubscribe(CLIENT_CALL_CHANNEL, onClient);
    client.close();
    await dispose();
  }
});
