// Deadlines on both sides: the server answers DEADLINE_EXCEEDED and aborts the handler's signal
// when timeout_nano passes; the client gives up on its own when the server never answers.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { fromBinary } from "@bufbuild/protobuf";
import { AgentService } from "../../src/protocol/gen/katats/agent/v1/agent_pb.js";
import { RequestSchema } from "../../src/protocol/gen/ttrpc/request_pb.js";
import { Code, FrameDecoder, TtrpcClient, TtrpcError, TtrpcServer, createClient } from "../../src/protocol/ttrpc/index.js";
import { RawConn, decodeResponse, listenTemp, requestBytes, withTempDir } from "./ttrpc-wire.js";

const AGENT = "katats.agent.v1.AgentService";

void test("ttrpc deadline: server answers DEADLINE_EXCEEDED, aborts the handler, never sends the late result", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let abortReason: unknown;
  const server = new TtrpcServer().register(AgentService, {
    waitProcess: async (_req, ctx) => {
      ctx.signal.addEventListener("abort", () => (abortReason = ctx.signal.reason));
      assert.ok(ctx.deadline !== undefined && ctx.deadline > Date.now() - 1000);
      await gate; // ignores the signal on purpose: its late answer must be dropped
      return { status: 7 };
    },
    startContainer: async () => ({ pid: 1 }),
  });
  const { path, dispose } = await listenTemp(server);
  const raw = await RawConn.open(path);
  try {
    raw.write(requestBytes(1, AGENT, "WaitProcess", new Uint8Array(), { timeoutNano: 50_000_000n }));
    const [first] = await raw.waitFrames(1);
    assert.ok(first !== undefined);
    assert.equal(first.streamId, 1);
    assert.equal(decodeResponse(first).code, Code.DEADLINE_EXCEEDED);
    assert.ok(abortReason instanceof TtrpcError && abortReason.status === Code.DEADLINE_EXCEEDED);
    release();
    await gate;
    // Answers go out in order on one socket: had the late result been sent, it would come first.
    raw.write(requestBytes(3, AGENT, "StartContainer"));
    const frames = await raw.waitFrames(2);
    assert.deepEqual(
      frames.map((f) => [f.streamId, decodeResponse(f).code]),
      [
        [1, Code.DEADLINE_EXCEEDED],
        [3, Code.OK],
      ],
    );
  } finally {
    await raw.close();
    await dispose();
  }
});

void test("ttrpc deadline: client times out against a server that never answers, and sends timeout_nano", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/silent.sock`;
    const timeouts: bigint[] = [];
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((sock) => {
      sockets.add(sock);
      const dec = new FrameDecoder();
      sock.on("data", (chunk: Buffer) => {
        for (const ev of dec.push(chunk)) if (ev.kind === "frame") timeouts.push(fromBinary(RequestSchema, ev.frame.payload).timeoutNano);
      });
    });
    await new Promise<void>((resolve) => silent.listen(path, resolve));
    const client = await TtrpcClient.connect(path);
    try {
      const agent = createClient(client, AgentService);
      await assert.rejects(agent.waitProcess({ containerId: "c" }, { timeoutMs: 50 }), (err: unknown) => {
        assert.ok(err instanceof TtrpcError);
        assert.equal(err.status, Code.DEADLINE_EXCEEDED);
        assert.equal(err.code, "DEADLINE_EXCEEDED");
        return true;
      });
      // The client's deadline can pass before this server has read the request (a stall longer than
      // 50 ms: timers run before the socket is read), so wait for it.
      const deadline = Date.now() + 10_000;
      while (timeouts.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(timeouts, [50_000_000n]);

      const ac = new AbortController();
      const cancelled = agent.waitProcess({}, { signal: ac.signal });
      ac.abort();
      await assert.rejects(cancelled, (err: unknown) => err instanceof TtrpcError && err.status === Code.CANCELLED);
    } finally {
      client.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
