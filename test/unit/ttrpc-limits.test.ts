// The 4 MiB message limit in both directions: oversized messages fail with RESOURCE_EXHAUSTED for
// that call only, and the connection keeps working; except a response frame over the limit, which
// no conforming server sends: the client ends that connection (the agent is untrusted).
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { AgentService } from "../../src/protocol/gen/katats/agent/v1/agent_pb.js";
import {
  Code,
  MESSAGE_LENGTH_MAX,
  MESSAGE_TYPE_RESPONSE,
  TtrpcClient,
  TtrpcError,
  TtrpcServer,
  createClient,
} from "../../src/protocol/ttrpc/index.js";
import { RawConn, decodeResponse, listenTemp, requestBytes, withTempDir } from "./ttrpc-wire.js";

const exhausted = (err: unknown): boolean => err instanceof TtrpcError && err.status === Code.RESOURCE_EXHAUSTED;

function agentServer(): TtrpcServer {
  return new TtrpcServer().register(AgentService, {
    // Answers with `len` bytes of data, whatever the limit says.
    readStdout: async (req) => ({ data: new Uint8Array(req.len).fill(0x61) }),
    writeStdin: async (req) => ({ len: req.data.length }),
  });
}

void test("ttrpc limits: requests over 4 MiB fail locally, near-limit ones pass, connection survives", async () => {
  const { path, dispose } = await listenTemp(agentServer());
  const client = await TtrpcClient.connect(path);
  try {
    const agent = createClient(client, AgentService);
    await assert.rejects(agent.writeStdin({ containerId: "c", data: new Uint8Array(MESSAGE_LENGTH_MAX) }), exhausted);
    const near = MESSAGE_LENGTH_MAX - 256; // leaves room for the Request envelope
    assert.equal((await agent.writeStdin({ containerId: "c", data: new Uint8Array(near) })).len, near);
  } finally {
    client.close();
    await dispose();
  }
});

void test("ttrpc limits: responses over 4 MiB become RESOURCE_EXHAUSTED, near-limit ones arrive whole", async () => {
  const { path, dispose } = await listenTemp(agentServer());
  const client = await TtrpcClient.connect(path);
  try {
    const agent = createClient(client, AgentService);
    await assert.rejects(agent.readStdout({ len: MESSAGE_LENGTH_MAX + 1 }), exhausted);
    const near = MESSAGE_LENGTH_MAX - 64;
    const res = await agent.readStdout({ len: near });
    assert.equal(res.data.length, near);
    assert.ok(res.data.every((b) => b === 0x61));
  } finally {
    client.close();
    await dispose();
  }
});

void test("ttrpc limits: server discards an oversized frame, answers RESOURCE_EXHAUSTED, keeps the connection", async () => {
  const { path, dispose } = await listenTemp(agentServer());
  const raw = await RawConn.open(path);
  try {
    const header = Buffer.alloc(10);
    header.writeUInt32BE(MESSAGE_LENGTH_MAX + 1, 0);
    header.writeUInt32BE(1, 4);
    header.writeUInt8(1, 8);
    raw.write(header);
    raw.write(Buffer.alloc(MESSAGE_LENGTH_MAX + 1, 0x0a)); // bytes that must be skipped, not parsed
    raw.write(requestBytes(3, "katats.agent.v1.AgentService", "WriteStdin", new Uint8Array([0x1a, 0x02, 0x68, 0x69])));
    const frames = await raw.waitFrames(2);
    assert.deepEqual(
      frames.map((f) => [f.streamId, decodeResponse(f).code]),
      [
        [1, Code.RESOURCE_EXHAUSTED],
        [3, Code.OK],
      ],
    );
    assert.deepEqual([...decodeResponse(frames[1]!).payload], [0x08, 0x02]); // WriteStreamResponse{len: 2}
  } finally {
    await raw.close();
    await dispose();
  }
});

void test("ttrpc limits: an oversized response frame is a protocol violation: the client closes the connection and fails every call", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/big.sock`;
    const sockets = new Set<net.Socket>();
    let peerSawClose!: () => void;
    const closedByClient = new Promise<void>((resolve) => (peerSawClose = resolve));
    // A server that answers stream 1 with a frame header over the limit, then would answer stream 3.
    const rogue = net.createServer((sock) => {
      sockets.add(sock);
      sock.on("error", () => undefined);
      sock.on("close", () => peerSawClose());
      let answered = false;
      sock.on("data", () => {
        if (answered) return;
        answered = true;
        const big = Buffer.alloc(10);
        big.writeUInt32BE(MESSAGE_LENGTH_MAX + 10, 0);
        big.writeUInt32BE(1, 4);
        big.writeUInt8(MESSAGE_TYPE_RESPONSE, 8);
        sock.write(big);
      });
    });
    await new Promise<void>((resolve) => rogue.listen(path, resolve));
    const client = await TtrpcClient.connect(path);
    try {
      const results = await Promise.allSettled([client.call("s", "m", new Uint8Array()), client.call("s", "m", new Uint8Array())]);
      for (const r of results) {
        assert.ok(r.status === "rejected" && r.reason instanceof TtrpcError && r.reason.status === Code.UNAVAILABLE, String(r.status === "rejected" ? r.reason : r.status));
        assert.match(String(r.reason), new RegExp(`protocol violation by the server: a frame of ${MESSAGE_LENGTH_MAX + 10} bytes \\(stream 1, type 2\\) exceeds the ${MESSAGE_LENGTH_MAX}-byte limit; connection closed`));
      }
      await client.closed;
      await closedByClient;
      assert.match(String(client.closeReason), /protocol violation/);
      await assert.rejects(client.call("s", "m", new Uint8Array()), /protocol violation/);
    } finally {
      client.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => rogue.close(() => resolve()));
    }
  });
});

void test("ttrpc limits: a peer that stops reading its answers is throttled, others are served, and it gets every answer once it reads", async () => {
  const server = agentServer();
  const { path, dispose } = await listenTemp(server);
  const slowReader = await RawConn.open(path);
  const client = await TtrpcClient.connect(path);
  try {
    slowReader.sock.pause(); // read nothing: the server's answers pile up on its side
    const n = 600; // 600 answers of 64 KiB: well past the server's 16 MiB write backlog
    const readReq = new Uint8Array([0x18, 0x80, 0x80, 0x04]); // ReadStreamRequest{len: 65536}
    for (let i = 0; i < n; i++) slowReader.write(requestBytes(2 * i + 1, "katats.agent.v1.AgentService", "ReadStdout", readReq));
    // Another connection is unaffected.
    assert.equal((await createClient(client, AgentService).writeStdin({ data: new Uint8Array(10) }, { timeoutMs: 10_000 })).len, 10);
    slowReader.sock.resume();
    const frames = await slowReader.waitFrames(n, 60_000);
    assert.equal(frames.length, n);
    assert.ok(frames.every((f) => decodeResponse(f).code === Code.OK && decodeResponse(f).payload.length > 65536));
    assert.deepEqual(
      frames.map((f) => f.streamId).sort((a, b) => a - b),
      Array.from({ length: n }, (_, i) => 2 * i + 1),
    );
  } finally {
    client.close();
    await slowReader.close();
    await dispose();
  }
});
