// Interop with a real containerd 1.6: our ttRPC client publishes a /tasks/exit event through
// containerd's Events.Forward on its ttrpc socket, exactly as a shim does, and `ctr events` (a
// real subscriber) must print it with the right topic and content.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TaskExitSchema } from "../../src/protocol/gen/containerd/events/task_pb.js";
import { Events } from "../../src/protocol/gen/containerd/services/events/ttrpc/v1/events_pb.js";
import { taskEventRequest } from "../../src/protocol/events.js";
import { Code, TtrpcClient, TtrpcError, createClient } from "../../src/protocol/ttrpc/index.js";
import { assertNoLeaks, startContainerd, type PrivateContainerd } from "../harness/containerd.js";

let ctd: PrivateContainerd | undefined;
after(async () => {
  await ctd?.stop();
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

void test("containerd events: a TaskExit forwarded over our ttRPC client reaches `ctr events`", { timeout: 120_000 }, async () => {
  ctd = await startContainerd();
  const scope = ctd;
  const subscriber = spawn("ctr", ["--address", ctd.address, "events"], { stdio: ["ignore", "pipe", "pipe"] });
  const subscriberExit = once(subscriber, "exit");
  let out = "";
  subscriber.stdout.on("data", (d: Buffer) => (out += d.toString()));
  subscriber.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const client = await TtrpcClient.connect(ctd.ttrpcAddress, { timeoutMs: 5000 });
  try {
    const events = createClient(client, Events);
    const containerId = `kata-ts-events-${process.pid}`;
    const exitedAt = new Date();
    // The subscription is live only some time after ctr starts: publish until it shows up.
    let line: string | undefined;
    for (let attempt = 0; attempt < 100 && line === undefined; attempt++) {
      const exit = { containerId, id: containerId, pid: 4242, exitStatus: 137, exitedAt: timestampFromDate(exitedAt) };
      const req = taskEventRequest("default", TaskExitSchema, exit, exitedAt);
      await events.forward(req, { timeoutMs: 5000, metadata: { "containerd-namespace-ttrpc": "default" } });
      await sleep(200);
      line = out.split("\n").find((l) => l.includes(containerId));
    }
    assert.ok(line !== undefined, `ctr events never printed the event; it printed:\n${out}`);
    // ctr events prints: <timestamp (4 words)> <namespace> <topic> <event as JSON>
    const m = /^(\S+ \S+ \S+ \S+) (\S+) (\S+) (\{.*\})$/.exec(line);
    assert.ok(m !== null, `unexpected ctr events line: ${line}`);
    assert.ok(m[1]?.startsWith(exitedAt.toISOString().slice(0, 10)), `envelope timestamp printed: ${m[1]}`);
    assert.equal(m[2], "default");
    assert.equal(m[3], "/tasks/exit");
    const ev = JSON.parse(m[4] ?? "{}") as Record<string, unknown>;
    assert.equal(ev.container_id, containerId);
    assert.equal(ev.id, containerId);
    assert.equal(ev.pid, 4242);
    assert.equal(ev.exit_status, 137);
    assert.equal(Date.parse(String(ev.exited_at)), exitedAt.getTime());

    // containerd's (Go) ttrpc server and our client agree on error statuses too.
    await assert.rejects(
      client.call(Events.typeName, "NoSuchMethod", new Uint8Array(), { timeoutMs: 5000 }),
      (err: unknown) => err instanceof TtrpcError && err.status === Code.UNIMPLEMENTED && err.code === "UNIMPLEMENTED",
    );
    await assert.rejects(
      events.forward({ envelope: { topic: "/tasks/exit" } }, { timeoutMs: 5000 }), // no namespace
      (err: unknown) => err instanceof TtrpcError && err.status === Code.INVALID_ARGUMENT && err.code === "INVALID_ARGUMENT",
    );
  } finally {
    client.close();
    subscriber.kill("SIGTERM");
    await subscriberExit;
  }
  await ctd.stop();
  ctd = undefined;
  await assertNoLeaks(scope);
});
