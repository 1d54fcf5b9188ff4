// Connection bounds of a listening ttRPC server, over a real unix socket: past maxConnections new
// connections are closed at once (and accepted again once one goes); a connection that sends no
// request within firstRequestTimeoutMs is closed; one that has sent a request may then stay idle
// (containerd keeps one per task open between calls) and keeps working.
import { test } from "node:test";
import assert from "node:assert/strict";
import diagnostics from "node:diagnostics_channel";
import { setTimeout as sleep } from "node:timers/promises";
import { CheckResponse_ServingStatus, Health } from "../../src/protocol/gen/katats/agent/v1/health_pb.js";
import { Code, TtrpcClient, TtrpcError, TtrpcServer, createClient } from "../../src/protocol/ttrpc/index.js";
import { SERVER_CONNECTION_CHANNEL, type ConnectionEvent } from "../../src/protocol/ttrpc/diagnostics.js";
import { RawConn, listenTemp } from "./ttrpc-wire.js";

function healthServer(opts: ConstructorParameters<typeof TtrpcServer>[0]): TtrpcServer {
  return new TtrpcServer(opts).register(Health, { check: async () => ({ status: CheckResponse_ServingStatus.SERVING }) });
}

async function checkOk(client: TtrpcClient): Promise<void> {
  const res = await createClient(client, Health).check({}, { timeoutMs: 2000 });
  assert.equal(res.status, CheckResponse_ServingStatus.SERVING);
}

/** Resolves true if the socket is closed by the server within `ms`. */
async function closedWithin(conn: RawConn, ms: number): Promise<boolean> {
  return Promise.race([conn.closed.then(() => true), sleep(ms).then(() => false)]);
}

void test("ttrpc connections: over maxConnections a new connection is closed at once; a freed slot is reused; the others keep working", async () => {
  const server = healthServer({ maxConnections: 4, firstRequestTimeoutMs: 0 });
  const { path, dispose } = await listenTemp(server);
  const events: ConnectionEvent[] = [];
  const onEvent = (ev: unknown): void => void events.push(ev as ConnectionEvent);
  diagnostics.subscribe(SERVER_CONNECTION_CHANNEL, onEvent);
  const clients: TtrpcClient[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      const c = await TtrpcClient.connect(path);
      clients.push(c);
      await checkOk(c);
    }
    assert.equal(server.connectionCount, 4);
    const fifth = await RawConn.open(path);
    assert.ok(await closedWithin(fifth, 2000), "the connection over the cap was closed by the server");
    assert.deepEqual(events, [{ event: "refused", connections: 4 }]);
    const sixth = await TtrpcClient.connect(path);
    await assert.rejects(createClient(sixth, Health).check({}, { timeoutMs: 2000 }), (err) => err instanceof TtrpcError && err.status === Code.UNAVAILABLE);
    sixth.close();
    for (const c of clients) await checkOk(c); // the admitted ones are unaffected

    (clients.shift() as TtrpcClient).close();
    for (let i = 0; i < 100 && server.connectionCount > 3; i++) await sleep(10);
    assert.equal(server.connectionCount, 3, "a closed connection frees its slot");
    const again = await TtrpcClient.connect(path);
    clients.push(again);
    await checkOk(again);
  } finally {
    diagnostics.unsubscribe(SERVER_CONNECTION_CHANNEL, onEvent);
    for (const c of clients) c.close();
    await dispose();
  }
});

void test("ttrpc connections: a silent connection is closed after firstRequestTimeoutMs; one that made a call stays open while idle", async () => {
  const server = healthServer({ maxConnections: 8, firstRequestTimeoutMs: 200 });
  const { path, dispose } = await listenTemp(server);
  const caller = await TtrpcClient.connect(path);
  try {
    await checkOk(caller); // containerd's pattern: a call at once, then long idle stretches
    const silent = await RawConn.open(path);
    const partial = await RawConn.open(path);
    partial.write(new Uint8Array([0, 0, 0])); // a third of a frame header is not a request
    assert.ok(await closedWithin(silent, 3000), "a connection that never sent a request was closed");
    assert.ok(await closedWithin(partial, 3000), "a connection that sent only part of a frame was closed");
    await sleep(600); // three times the timeout, idle
    await checkOk(caller);
    assert.equal(server.connectionCount, 1);
  } finally {
    caller.close();
    await dispose();
  }
});

void test("ttrpc connections: the defaults bound a listening server (128 connections, 10 s to the first request)", async () => {
  const server = healthServer({});
  const { path, dispose } = await listenTemp(server);
  const conns: RawConn[] = [];
  try {
    for (let i = 0; i < 129; i++) conns.push(await RawConn.open(path));
    const last = conns.at(-1) as RawConn;
    assert.ok(await closedWithin(last, 2000), "the 129th connection was refused");
    assert.equal(server.connectionCount, 128);
  } finally {
    for (const c of conns) await c.close();
    await dispose();
  }
});
