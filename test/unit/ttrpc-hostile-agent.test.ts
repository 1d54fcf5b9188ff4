// The host against a hostile guest agent: a separate process (hostile-agent.ts) speaking ttRPC
// badly over a real unix socket, as a root process in the VM could. What the shim keeps must stay
// bounded: one frame's buffer for a frame sent in tiny pieces; nothing at all for a frame header
// over the limit (the connection is closed, the calls fail and the pod is lost, saying why); a bounded rate of OOM
// events pulled, only known containers forwarded, and a bounded queue towards a slow containerd.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { AgentService } from "../../src/protocol/gen/katats/agent/v1/agent_pb.js";
import { Events } from "../../src/protocol/gen/containerd/services/events/ttrpc/v1/events_pb.js";
import { Code, FrameDecoder, MESSAGE_LENGTH_MAX, TtrpcClient, TtrpcError, TtrpcServer, createClient, encodeFrame } from "../../src/protocol/ttrpc/index.js";
import type { VmExit } from "../../src/hypervisor/types.js";
import { AgentClient } from "../../src/sandbox/agent-client.js";
import { PodWatch, type SandboxLoss } from "../../src/sandbox/pod-watch.js";
import { EventPublisher } from "../../src/shim/events.js";
import { OomFilter, pumpOomEvents } from "../../src/shim/oom-events.js";
import { createLogger } from "../../src/util/log.js";
import { withTempDir } from "./ttrpc-wire.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const log = createLogger("test", "/dev/null");

/** Retained JS heap + Buffer memory after a full GC. */
function retained(): number {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

interface Agent {
  proc: ChildProcess;
  lines: string[];
  waitLine(text: string, timeoutMs?: number): Promise<void>;
}

async function startAgent(socketPath: string, mode: string): Promise<Agent> {
  const script = fileURLToPath(new URL("./hostile-agent.js", import.meta.url));
  const proc = spawn(process.execPath, [script, socketPath, mode], { stdio: ["ignore", "pipe", "inherit"] });
  const lines: string[] = [];
  let wake: (() => void) | undefined;
  proc.stdout?.setEncoding("utf8");
  proc.stdout?.on("data", (chunk: string) => {
    lines.push(...chunk.split("\n").filter((l) => l !== ""));
    wake?.();
  });
  const agent: Agent = {
    proc,
    lines,
    async waitLine(text, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!lines.some((l) => l.startsWith(text))) {
        if (Date.now() > deadline) assert.fail(`hostile agent did not print "${text}" within ${timeoutMs} ms (printed: ${lines.join(" | ")})`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 100);
        });
      }
    },
  };
  await agent.waitLine("listening");
  return agent;
}

async function stopAgent(agent: Agent): Promise<void> {
  if (agent.proc.exitCode === null && agent.proc.signalCode === null) {
    const exited = once(agent.proc, "exit");
    agent.proc.kill("SIGKILL");
    await exited;
  }
}

void test("hostile agent: the decoder holds one frame's buffer, however small the pieces (in-process, 4 MiB one byte at a time)", () => {
  const frame = encodeFrame({ streamId: 1, type: 2, flags: 0 }, Buffer.alloc(MESSAGE_LENGTH_MAX, 0x61));
  const decoder = new FrameDecoder();
  const before = retained();
  let peak = 0;
  let frames = 0;
  for (let i = 0; i < frame.length; i++) {
    frames += decoder.push(frame.subarray(i, i + 1)).length;
    if (i % (512 << 10) === 0) peak = Math.max(peak, retained() - before);
  }
  assert.equal(frames, 1);
  assert.equal(decoder.idle, true);
  // One 4 MiB buffer, not 4 Mi retained pieces (the old decoder: ~770 MiB).
  assert.ok(peak < 3 * MESSAGE_LENGTH_MAX, `retained ${(peak / 2 ** 20).toFixed(1)} MiB while decoding a 4 MiB frame`);
});

void test("hostile agent: a ~4 MiB answer sent one byte per write costs the client about one frame of memory", { timeout: 180_000 }, async (t) => {
  await withTempDir(async (dir) => {
    const agent = await startAgent(`${dir}/agent.sock`, "trickle");
    const sock = net.createConnection(`${dir}/agent.sock`);
    await once(sock, "connect");
    let chunks = 0;
    sock.on("data", () => chunks++);
    const client = new TtrpcClient(sock);
    const before = retained();
    let peak = 0;
    const bound = 4 * MESSAGE_LENGTH_MAX;
    const sampler = setInterval(() => {
      peak = Math.max(peak, retained() - before);
      if (peak > bound) client.close(); // over the bound already: stop here, fail below
    }, 500);
    try {
      const res = await createClient(client, AgentService)
        .readStdout({ containerId: "c", len: MESSAGE_LENGTH_MAX }, { timeoutMs: 150_000 })
        .catch((err: unknown) => assert.fail(`retained up to ${(peak / 2 ** 20).toFixed(1)} MiB (${chunks} chunks received), then: ${String(err)}`));
      clearInterval(sampler);
      assert.equal(res.data.length, MESSAGE_LENGTH_MAX - 64);
      t.diagnostic(`${chunks} chunks received; retained up to ${(peak / 2 ** 20).toFixed(1)} MiB`);
      // The stress was real: the answer arrived in many small pieces (here ~600,000; ~7 bytes each).
      assert.ok(chunks > 100_000, `only ${chunks} chunks: the agent's writes were coalesced`);
      // The frame's buffer plus its decoded copies at the very end; the old decoder kept one
      // Buffer object per piece received (~200 bytes each: over 100 MiB here).
      assert.ok(peak < bound, `retained up to ${(peak / 2 ** 20).toFixed(1)} MiB during a 4 MiB answer`);
    } finally {
      clearInterval(sampler);
      client.close();
      await stopAgent(agent);
    }
  });
});

void test("hostile agent: an oversized frame header closes the agent connection, fails the calls and loses the pod, naming the violation", { timeout: 60_000 }, async () => {
  await withTempDir(async (dir) => {
    const agent = await startAgent(`${dir}/agent.sock`, "oversized");
    const ttrpc = await TtrpcClient.connect(`${dir}/agent.sock`);
    const client = new AgentClient(ttrpc);
    // The sandbox's watcher over this agent; the VM is a stand-in that stays up (its real death is
    // test/e2e/faults.test.ts's), so the loss must be blamed on the agent, with the reason.
    const losses: SandboxLoss[] = [];
    const watch = new PodWatch({ vm: { pid: 4242, wait: () => new Promise<VmExit>(() => undefined) }, agent: client, livenessTimeoutMs: 0 }, (l) => losses.push(l));
    try {
      const started = Date.now();
      const calls = await Promise.allSettled([client.nextOom(), client.nextOom(), client.version()]);
      for (const r of calls) {
        assert.equal(r.status, "rejected");
        const err = r.status === "rejected" ? (r.reason as unknown) : undefined;
        assert.ok(err instanceof TtrpcError && err.status === Code.UNAVAILABLE, String(err));
        assert.match(err.message, new RegExp(`protocol violation by the server: a frame of ${MESSAGE_LENGTH_MAX + 1} bytes .* exceeds the ${MESSAGE_LENGTH_MAX}-byte limit; connection closed`));
      }
      assert.ok(Date.now() - started < 5000, "the calls fail at the header, not after a deadline");
      await client.closed;
      assert.match(client.closeReason ?? "", /protocol violation by the server/);
      await agent.waitLine("peer-closed"); // the agent's end sees the close: nothing is skipped or kept
      await assert.rejects(client.version(), /protocol violation/);
      const deadline = Date.now() + 5000;
      while (losses.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.equal(losses.length, 1, "the pod is lost");
      assert.equal(losses[0]?.cause, "agent");
      assert.match(losses[0]?.message ?? "", /^the connection to the guest agent closed \(ttrpc protocol violation by the server: a frame of 4194305 bytes/);
    } finally {
      watch.stop();
      client.close();
      await stopAgent(agent);
    }
  });
});

void test("hostile agent: an OOM flood is pulled at a bounded rate, unknown ids are dropped, and the event queue to a slow containerd stays bounded", { timeout: 60_000 }, async () => {
  await withTempDir(async (dir) => {
    const agent = await startAgent(`${dir}/agent.sock`, "oom-flood");
    // A slow containerd: each Forward takes 300 ms.
    const forwarded: string[] = [];
    const containerd = new TtrpcServer().register(Events, {
      forward: async (req) => {
        await new Promise((r) => setTimeout(r, 300));
        forwarded.push(req.envelope?.topic ?? "");
        return {};
      },
    });
    await containerd.listen(`${dir}/containerd.sock`);
    const publisher = new EventPublisher(`unix://${dir}/containerd.sock`, "k8s.io", log);
    const client = new AgentClient(await TtrpcClient.connect(`${dir}/agent.sock`));
    const stop = new AbortController();
    try {
      const filter = new OomFilter((id) => id === "known", log);
      let maxQueued = 0;
      const limits = { ratePerSecond: 20, burst: 50 };
      const pumpedAt = performance.now();
      const pump = pumpOomEvents(
        (signal) => client.nextOom(signal),
        (id) => {
          if (filter.accept(id)) publisher.publish({ topic: "/tasks/oom", containerId: id });
          maxQueued = Math.max(maxQueued, publisher.queued);
        },
        stop.signal,
        limits,
      );
      const seconds = 3;
      await new Promise((r) => setTimeout(r, seconds * 1000));
      stop.abort();
      // The bounds below are per second pumped: a loaded host's timer can end the window late.
      const pumped = Math.max(seconds, Math.ceil((performance.now() - pumpedAt) / 1000));
      await pump.catch(() => undefined);
      const { received, forwarded: accepted, unknown, coalesced } = filter.stats;
      // Bounded pull: the burst plus the rate, however fast the guest answers.
      assert.ok(received <= limits.burst + limits.ratePerSecond * (pumped + 1), `pulled ${received} events in ${pumped} s`);
      assert.ok(received >= limits.burst, `pulled only ${received} events`);
      // The agent's n-th answer names "known" when n % 10 == 0; every other id is a ghost, dropped.
      assert.equal(unknown, received - Math.floor(received / 10), "every ghost id is dropped");
      assert.ok(accepted >= 1 && accepted <= pumped + 1, `one event per container per second at most: ${accepted} forwarded, ${coalesced} coalesced`);
      assert.ok(maxQueued <= 2, `publisher queue reached ${maxQueued}`);
      await publisher.close();
      assert.ok(forwarded.length === accepted && forwarded.every((t) => t === "/tasks/oom"), JSON.stringify(forwarded));
      agent.proc.kill("SIGUSR2");
      await agent.waitLine("answered");
      const answered = Number(agent.lines.find((l) => l.startsWith("answered"))?.split(" ")[1]);
      assert.ok(answered <= received + 1, `the agent answered ${answered} calls; the shim pulled ${received}`);
    } finally {
      stop.abort();
      client.close();
      await publisher.close();
      await containerd.close();
      await stopAgent(agent);
    }
  });
});

void test("event publisher: a full queue drops (OOM events first) and publish never blocks", { timeout: 60_000 }, async () => {
  await withTempDir(async (dir) => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const topics: string[] = [];
    const containerd = new TtrpcServer().register(Events, {
      forward: async (req) => {
        await gate; // containerd takes nothing until released
        topics.push(`${req.envelope?.topic ?? ""}`);
        return {};
      },
    });
    await containerd.listen(`${dir}/containerd.sock`);
    const publisher = new EventPublisher(`unix://${dir}/containerd.sock`, "k8s.io", log, 8);
    try {
      const started = performance.now();
      for (let i = 0; i < 4; i++) publisher.publish({ topic: "/tasks/oom", containerId: `c${i}` });
      // Duplicates of queued ones are coalesced; c0's is kept, since c0's event is already in flight.
      for (let i = 0; i < 4; i++) publisher.publish({ topic: "/tasks/oom", containerId: `c${i}` });
      assert.equal(publisher.queued, 5);
      for (let i = 0; i < 100; i++) publisher.publish({ topic: "/tasks/start", containerId: `s${i}`, pid: i });
      assert.ok(performance.now() - started < 1000, "publish() never waits for containerd");
      assert.equal(publisher.queued, 8);
      release();
      await publisher.close();
      // In flight first (c0), then the starts that evicted the queued OOM events, then drops.
      assert.deepEqual(topics, ["/tasks/oom", ...Array.from({ length: 7 }, () => "/tasks/start")]);
      assert.equal(publisher.dropped, 3 + 4 + 93); // coalesced, evicted OOM events, starts refused when full
    } finally {
      release();
      await publisher.close();
      await containerd.close();
    }
  });
});
