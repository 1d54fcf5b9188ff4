// Multiplexing: handlers run concurrently, and one slow call never delays the others on the same
// connection (asserted by order of completion, not by timing).
import { test } from "node:test";
import assert from "node:assert/strict";
import { AgentService } from "../../src/protocol/gen/katats/agent/v1/agent_pb.js";
import { TtrpcClient, TtrpcServer, createClient } from "../../src/protocol/ttrpc/index.js";
import { listenTemp } from "./ttrpc-wire.js";

void test("ttrpc concurrency: 1,000 concurrent calls complete while one slow call is still pending", async () => {
  let releaseSlow!: () => void;
  const slowGate = new Promise<void>((r) => (releaseSlow = r));
  const server = new TtrpcServer().register(AgentService, {
    execProcess: async (req) => {
      if (req.execId === "e999") await slowGate;
      // Echo the number back through the pid, after a turn of the event loop.
      await new Promise((r) => setImmediate(r));
      return { pid: Number(req.execId.slice(1)) };
    },
  });
  const { path, dispose } = await listenTemp(server);
  const client = await TtrpcClient.connect(path);
  try {
    const agent = createClient(client, AgentService);
    let slowSettled = false;
    const slow = agent.execProcess({ containerId: "c", execId: "e999" }).finally(() => (slowSettled = true));
    const others = Array.from({ length: 999 }, (_, i) => agent.execProcess({ containerId: "c", execId: `e${i}` }));
    const results = await Promise.all(others);
    assert.equal(slowSettled, false, "the slow call is still pending after all the others answered");
    assert.deepEqual(
      results.map((r) => r.pid),
      Array.from({ length: 999 }, (_, i) => i),
    );
    releaseSlow();
    assert.equal((await slow).pid, 999);
  } finally {
    client.close();
    await dispose();
  }
});

void test("ttrpc concurrency: handlers of one connection run at the same time", async () => {
  const n = 20;
  let started = 0;
  let allStarted!: () => void;
  const barrier = new Promise<void>((r) => (allStarted = r));
  const server = new TtrpcServer().register(AgentService, {
    // Every handler waits until all n have started: this finishes only if they run concurrently.
    waitProcess: async () => {
      if (++started === n) allStarted();
      await barrier;
      return { status: started };
    },
  });
  const { path, dispose } = await listenTemp(server);
  const client = await TtrpcClient.connect(path);
  try {
    const agent = createClient(client, AgentService);
    const res = await Promise.all(Array.from({ length: n }, () => agent.waitProcess({}, { timeoutMs: 10_000 })));
    assert.ok(res.every((r) => r.status === n));
  } finally {
    client.close();
    await dispose();
  }
});
