// What a reattached host relies on in the agent's OutputBuffer (src/agent/container/output-buffer.ts):
// a ReadStdout long poll cancelled because its connection closed (the shim died mid-poll) takes
// nothing, and output written while no host reads waits for the next host's read, end of stream
// included. A real stream as the source (crun's pipe in the guest).
import { test } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { setImmediate as tick } from "node:timers/promises";
import { OutputBuffer } from "../../src/agent/container/output-buffer.js";
import { isKataError } from "../../src/util/errors.js";

void test("a poll cancelled by its connection's close takes nothing: the next host reads everything since", async () => {
  const pipe = new PassThrough();
  const buf = new OutputBuffer();
  buf.attach(pipe);
  pipe.write("line-0\n");
  await tick();
  assert.equal((await buf.read(1024)).data.toString(), "line-0\n", "the first host reads line 0");
  const oldHost = new AbortController();
  const poll = buf.read(1024, oldHost.signal);
  oldHost.abort(); // the connection closed under the poll
  await assert.rejects(poll, (e: unknown) => isKataError(e, "CANCELLED"));
  for (let i = 1; i <= 10; i++) pipe.write(`line-${i}\n`);
  pipe.end();
  await tick();
  const next = await buf.read(1024);
  assert.equal(next.data.toString(), Array.from({ length: 10 }, (_v, i) => `line-${i + 1}\n`).join(""), "the new host reads what came while nobody read");
  assert.equal(next.eof, true, "and the end of the stream");
});
