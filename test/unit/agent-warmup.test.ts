// The snapshot builder's warm-up (src/agent/warmup.ts): a real Health.Check through the agent's
// server over an in-memory pipe, then the same request bytes served from a file through VirtioPort.
import assert from "node:assert/strict";
import test from "node:test";
import { createAgentServer } from "../../src/agent/server.js";
import { warmUpFirstRequest, warmUpStartPath } from "../../src/agent/warmup.js";

void test("warm-up: the Check request is answered over the pipe, then again through VirtioPort from a file", async () => {
  const server = createAgentServer();
  const request = await warmUpFirstRequest(server);
  // A ttRPC frame: 10-byte header (length, stream id, type 1 = request) and a payload naming the method.
  assert.ok(request.length > 10);
  assert.equal(request.readUInt32BE(0), request.length - 10);
  assert.equal(request[8], 1);
  assert.ok(request.includes(Buffer.from("Check")));
  const lines: string[] = [];
  const replyBytes = await warmUpStartPath(server, request, (l) => lines.push(l));
  assert.ok(replyBytes > 10, `reply of ${replyBytes} bytes`);
  assert.deepEqual(lines.filter((l) => !l.includes("not written")), ["snapshot warm-up: start-up path"]);
});
