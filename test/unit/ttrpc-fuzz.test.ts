// Hostile input: 10,000 random or malformed frames over several connections to a ttRPC server in
// its own process. Well-framed bad requests must each get exactly one error answer; garbage
// connections must be answered or dropped; the process must survive and keep serving a
// well-behaved client. The generator is seeded (KATA_TS_FUZZ_SEED to replay a failure).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { CheckResponse_ServingStatus, Health } from "../../src/protocol/gen/katats/agent/v1/health_pb.js";
import { AgentService, WriteStreamRequestSchema } from "../../src/protocol/gen/katats/agent/v1/agent_pb.js";
import { Code, MESSAGE_LENGTH_MAX, TtrpcClient, createClient, encodeFrame } from "../../src/protocol/ttrpc/index.js";
import { RawConn, decodeResponse, prng, requestBytes, withTempDir } from "./ttrpc-wire.js";

const STRUCTURED_CONNS = 4;
const STRUCTURED_FRAMES = 1500;
const CHAOS_CONNS = 4;
const CHAOS_ITEMS = 1000; // 4*1500 + 4*1000 = 10,000 frames or fragments
const OVERSIZED_PER_CONN = 2;

const distSrc = join(import.meta.dirname, "..", "..", "src");
// The server under test, in a child process so that "did not crash" means something.
const serverScript = `
import { TtrpcServer } from ${JSON.stringify(join(distSrc, "protocol/ttrpc/index.js"))};
import { Health } from ${JSON.stringify(join(distSrc, "protocol/gen/katats/agent/v1/health_pb.js"))};
import { AgentService } from ${JSON.stringify(join(distSrc, "protocol/gen/katats/agent/v1/agent_pb.js"))};
const server = new TtrpcServer()
  .register(Health, { check: async () => ({ status: 1 }), version: async () => ({ agentVersion: "fuzz" }) })
  .register(AgentService, { writeStdin: async (req) => ({ len: req.data.length }) });
await server.listen(process.env.FUZZ_SOCK);
process.stdout.write("listening\\n");
process.on("SIGTERM", () => { void server.close().then(() => process.exit(0)); });
`;

type Expect = "ok" | "unimplemented" | "invalid" | "any" | "exhausted";

/** One connection's worth of well-framed but mostly bad requests, and the answer each should get. */
function structuredBatch(rand: () => number): { bytes: Buffer; expect: Map<number, Expect> } {
  const rb = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
  const parts: Buffer[] = [];
  const expect = new Map<number, Expect>();
  let odd = 1;
  let even = 2;
  const oversizedAt = new Set(Array.from({ length: OVERSIZED_PER_CONN }, () => Math.floor(rand() * STRUCTURED_FRAMES)));
  for (let i = 0; i < STRUCTURED_FRAMES; i++) {
    const kind = oversizedAt.has(i) ? 99 : Math.floor(rand() * 7);
    const id = kind === 3 ? even : odd;
    if (kind === 3) even += 2;
    else odd += 2;
    switch (kind) {
      case 0:
        parts.push(requestBytes(id, Health.typeName, "Check"));
        expect.set(id, "ok");
        break;
      case 1:
        parts.push(requestBytes(id, `no.such.Service${i}`, "Check"));
        expect.set(id, "unimplemented");
        break;
      case 2:
        parts.push(requestBytes(id, AgentService.typeName, `NoSuchMethod${i}`));
        expect.set(id, "unimplemented");
        break;
      case 3:
        parts.push(requestBytes(id, Health.typeName, "Check"));
        expect.set(id, "invalid");
        break;
      case 4: // garbage instead of a Request: whatever it decodes to, it gets one answer
        parts.push(encodeFrame({ streamId: id, type: 1, flags: Math.floor(rand() * 256) }, rb(Math.floor(rand() * 200))));
        expect.set(id, "any");
        break;
      case 5: // a Request whose payload is garbage for WriteStreamRequest
        parts.push(requestBytes(id, AgentService.typeName, "WriteStdin", rb(1 + Math.floor(rand() * 100))));
        expect.set(id, "any");
        break;
      case 6: // not a request (stray response, data frame, unknown type): ignored, no answer
        parts.push(encodeFrame({ streamId: id, type: 2 + Math.floor(rand() * 254), flags: 0 }, rb(Math.floor(rand() * 50))));
        break;
      default: {
        const header = Buffer.alloc(10);
        header.writeUInt32BE(MESSAGE_LENGTH_MAX + 1 + Math.floor(rand() * 1000), 0);
        header.writeUInt32BE(id, 4);
        header.writeUInt8(1, 8);
        parts.push(header, Buffer.alloc(header.readUInt32BE(0), 0x0a));
        expect.set(id, "exhausted");
      }
    }
  }
  return { bytes: Buffer.concat(parts), expect };
}

/** Bytes with no reliable framing: random blobs, truncated headers, absurd lengths. */
function chaosBatch(rand: () => number): Buffer {
  const rb = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
  const parts: Buffer[] = [];
  for (let i = 0; i < CHAOS_ITEMS; i++) {
    const kind = Math.floor(rand() * 4);
    if (kind === 0) parts.push(rb(1 + Math.floor(rand() * 64)));
    else if (kind === 1) parts.push(requestBytes(2 * i + 1, Health.typeName, "Check").subarray(0, 1 + Math.floor(rand() * 9)));
    else if (kind === 2) {
      const header = rb(10);
      header.writeUInt32BE(MESSAGE_LENGTH_MAX + 1 + Math.floor(rand() * (0xffff_ffff - MESSAGE_LENGTH_MAX - 1)), 0);
      parts.push(header, rb(Math.floor(rand() * 32)));
    } else parts.push(encodeFrame({ streamId: Math.floor(rand() * 0xffff_ffff), type: 1, flags: 0 }, rb(Math.floor(rand() * 64))));
  }
  return Buffer.concat(parts);
}

/** Write bytes in random-sized slices so frames straddle reads. */
function writeSliced(conn: RawConn, bytes: Buffer, rand: () => number): void {
  for (let off = 0; off < bytes.length; ) {
    const n = 1 + Math.floor(rand() * 70_000);
    conn.write(bytes.subarray(off, off + n));
    off += n;
  }
}

function matches(expect: Expect, code: number): boolean {
  switch (expect) {
    case "ok":
      return code === Code.OK;
    case "unimplemented":
      return code === Code.UNIMPLEMENTED;
    case "invalid":
      return code === Code.INVALID_ARGUMENT;
    case "exhausted":
      return code === Code.RESOURCE_EXHAUSTED;
    case "any":
      return true;
  }
}

void test("ttrpc fuzz: 10,000 malformed frames neither crash nor stall the server", async () => {
  const seed = Number(process.env.KATA_TS_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const rand = prng(seed);
  const ctx = `(seed ${seed}; replay with KATA_TS_FUZZ_SEED=${seed})`;
  await withTempDir(async (dir) => {
    const sock = join(dir, "fuzz.sock");
    const child = spawn(process.execPath, ["--input-type=module", "-e", serverScript], {
      env: { ...process.env, FUZZ_SOCK: sock },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = once(child, "exit");
    const conns: RawConn[] = [];
    try {
      const [line] = (await Promise.race([
        once(child.stdout, "data"),
        exited.then(() => assert.fail(`fuzz server exited at start: ${stderr}`)),
      ])) as [Buffer];
      assert.equal(line.toString().trim(), "listening");

      // Chaos first, left open while the others are served.
      const chaos = await Promise.all(Array.from({ length: CHAOS_CONNS }, () => RawConn.open(sock)));
      conns.push(...chaos);
      for (const c of chaos) writeSliced(c, chaosBatch(rand), rand);

      const structured = await Promise.all(Array.from({ length: STRUCTURED_CONNS }, () => RawConn.open(sock)));
      conns.push(...structured);
      const batches = structured.map(() => structuredBatch(rand));
      structured.forEach((c, i) => writeSliced(c, batches[i]!.bytes, rand));
      for (const [i, c] of structured.entries()) {
        const expect = batches[i]!.expect;
        const frames = await c.waitFrames(expect.size, 60_000);
        assert.equal(frames.length, expect.size, `connection ${i}: one answer per request ${ctx}`);
        const seen = new Set<number>();
        for (const f of frames) {
          const want = expect.get(f.streamId);
          assert.ok(want !== undefined && !seen.has(f.streamId), `unexpected answer on stream ${f.streamId} ${ctx}`);
          seen.add(f.streamId);
          const { code } = decodeResponse(f);
          assert.ok(matches(want, code), `stream ${f.streamId}: wanted ${want}, got code ${code} ${ctx}`);
        }
      }

      // A well-behaved client on a fresh connection still gets correct answers.
      const client = await TtrpcClient.connect(sock);
      try {
        assert.equal((await createClient(client, Health).check({}, { timeoutMs: 10_000 })).status, CheckResponse_ServingStatus.SERVING);
        assert.equal((await createClient(client, Health).version({}, { timeoutMs: 10_000 })).agentVersion, "fuzz");
        const data = toBinary(WriteStreamRequestSchema, create(WriteStreamRequestSchema, { data: new Uint8Array(1000) }));
        assert.ok(data.length > 0);
        assert.equal((await createClient(client, AgentService).writeStdin({ data: new Uint8Array(1000) })).len, 1000);
      } finally {
        client.close();
      }

      // Whatever the chaos connections got back was well-formed answers; once we stop sending,
      // the server drops them.
      for (const c of chaos) {
        for (const f of c.frames) assert.equal(f.type, 2, `server sent a non-response frame ${ctx}`);
        for (const f of c.frames) assert.doesNotThrow(() => decodeResponse(f), `server sent an undecodable response ${ctx}`);
        c.sock.end();
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(chaos.map((c) => c.closed)),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`server kept a garbage connection open ${ctx}`)), 10_000);
        }),
      ]).finally(() => clearTimeout(timer));
      assert.equal(child.exitCode, null, `server process died: ${stderr}`);
    } finally {
      for (const c of conns) await c.close();
      if (child.exitCode === null) child.kill("SIGTERM");
      const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
      assert.equal(signal, null);
      assert.equal(code, 0, `server exit ${ctx}: ${stderr}`);
    }
    assert.equal(stderr, "", "server wrote nothing to stderr");
  });
});
