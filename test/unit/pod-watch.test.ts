// The pod watcher's verdicts (src/sandbox/pod-watch.ts), with the agent over a real ttRPC socket:
// a Health.Check left unanswered past the liveness timeout (a paused or SIGSTOPped VM looks like
// this) loses the pod; a slow but answering agent does not; a dropped connection is blamed on the
// VM when the VM ended too; a virtiofsd exit that stop() did not ask for loses the pod; nothing is
// reported after stop(). The VM and virtiofsd are stand-ins here (promises): their real deaths are
// covered end to end in test/e2e/faults.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { CheckResponse_ServingStatus, Health } from "../../src/protocol/gen/katats/agent/v1/health_pb.js";
import { TtrpcClient, TtrpcServer } from "../../src/protocol/ttrpc/index.js";
import type { VmExit } from "../../src/hypervisor/types.js";
import { AgentClient } from "../../src/sandbox/agent-client.js";
import { PodWatch, type SandboxLoss } from "../../src/sandbox/pod-watch.js";
import type { VirtiofsdExit } from "../../src/sandbox/virtiofsd.js";
import { listenTemp } from "./ttrpc-wire.js";

interface Rig {
  agent: AgentClient;
  /** While set, Health.Check never answers (until the call's deadline). */
  wedge: (on: boolean) => void;
  endVm: (exit: VmExit) => void;
  endVirtiofsd: (exit: VirtiofsdExit) => void;
  losses: SandboxLoss[];
  watch: (livenessTimeoutMs: number, checkIntervalMs?: number) => PodWatch;
  /** Health.Checks the agent has received. */
  checks: () => number;
  dispose: () => Promise<void>;
}

async function rig(): Promise<Rig> {
  let wedged = false;
  let checks = 0;
  const server = new TtrpcServer().register(Health, {
    check: async (_req, ctx) => {
      checks++;
      if (wedged) await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
      return { status: CheckResponse_ServingStatus.SERVING };
    },
  });
  const { path, dispose } = await listenTemp(server);
  const agent = new AgentClient(await TtrpcClient.connect(path));
  let endVm!: (exit: VmExit) => void;
  const vmEnded = new Promise<VmExit>((resolve) => (endVm = resolve));
  let endVirtiofsd!: (exit: VirtiofsdExit) => void;
  const vfsExited = new Promise<VirtiofsdExit>((resolve) => (endVirtiofsd = resolve));
  const losses: SandboxLoss[] = [];
  let watch: PodWatch | undefined;
  return {
    agent,
    wedge: (on) => (wedged = on),
    endVm,
    endVirtiofsd,
    losses,
    checks: () => checks,
    watch: (livenessTimeoutMs, checkIntervalMs) => {
      const interval = checkIntervalMs === undefined ? {} : { checkIntervalMs };
      watch = new PodWatch(
        { vm: { pid: 4242, wait: () => vmEnded }, virtiofsd: { pid: 4343, exited: vfsExited }, agent, livenessTimeoutMs, ...interval },
        (loss) => losses.push(loss),
      );
      return watch;
    },
    dispose: async () => {
      watch?.stop();
      agent.close();
      await dispose();
    },
  };
}

async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`${what} within ${ms} ms`);
    await sleep(20);
  }
}

void test("pod watch: an answering agent keeps the pod; one that stops answering loses it after the liveness timeout", async () => {
  const r = await rig();
  try {
    r.watch(900);
    await sleep(2000); // several checks (every 300 ms), all answered
    assert.equal(r.losses.length, 0, "no loss while the agent answers");
    r.wedge(true);
    const wedgedAt = Date.now();
    await until("a loss", () => r.losses.length > 0, 5000);
    const loss = r.losses[0] as SandboxLoss;
    assert.equal(loss.cause, "agent");
    assert.match(loss.message, /answered no health check for \d+ s \(the VM is wedged, paused or stopped\)/);
    assert.ok(Date.now() - wedgedAt >= 600, "not before the timeout has (nearly) passed since the last answer");
    await sleep(1500);
    assert.equal(r.losses.length, 1, "reported once");
  } finally {
    await r.dispose();
  }
});

void test("pod watch: a dropped agent connection is blamed on the VM when the VM ended too", async () => {
  const r = await rig();
  try {
    r.watch(0);
    r.agent.close();
    await sleep(100);
    r.endVm({ reason: "crashed", exitCode: null, signal: "SIGKILL" });
    await until("a loss", () => r.losses.length > 0, 3000);
    assert.equal(r.losses[0]?.cause, "vmm");
    assert.equal(r.losses[0]?.message, "the VM's QEMU (pid 4242) was killed by SIGKILL");
  } finally {
    await r.dispose();
  }
});

void test("pod watch: virtiofsd dying loses the pod; a requested stop does not; nothing after stop()", async () => {
  const died = await rig();
  try {
    died.watch(0);
    died.endVirtiofsd({ code: null, signal: "SIGKILL", requested: false });
    await until("a loss", () => died.losses.length > 0, 3000);
    assert.deepEqual([died.losses[0]?.cause, died.losses[0]?.message], ["virtiofsd", "virtiofsd (pid 4343) was killed by SIGKILL"]);
  } finally {
    await died.dispose();
  }
  const stopped = await rig();
  try {
    const watch = stopped.watch(0);
    stopped.endVirtiofsd({ code: 0, signal: null, requested: true });
    await sleep(600);
    assert.equal(stopped.losses.length, 0, "a requested virtiofsd stop is no loss");
    watch.stop();
    stopped.endVm({ reason: "stopped", exitCode: 0, signal: null });
    stopped.agent.close();
    await sleep(1300);
    assert.equal(stopped.losses.length, 0, "nothing is reported after stop()");
  } finally {
    await stopped.dispose();
  }
});

void test("pod watch: checks come every checkIntervalMs (agent.liveness_interval), 10 s by default, never more than a third of the timeout apart", async () => {
  const fast = await rig();
  try {
    // Counted as they come, not in a fixed window (a loaded host delays the checks, never hastens
    // them): three come well before one default interval, and not sooner than three 200 ms apart.
    const watchedAt = performance.now();
    fast.watch(30_000, 200);
    await until("three checks", () => fast.checks() >= 3, 8000);
    const took = performance.now() - watchedAt;
    assert.ok(took >= 3 * 200 - 5, `three checks at a 200 ms interval took ${took.toFixed(0)} ms`);
  } finally {
    await fast.dispose();
  }
  const idle = await rig();
  try {
    idle.watch(30_000); // default interval: 10 s, so none within a second (an idle pod is left alone)
    await sleep(1100);
    assert.equal(idle.checks(), 0);
  } finally {
    await idle.dispose();
  }
  const capped = await rig();
  try {
    capped.watch(900, 60_000); // the interval never exceeds a third of the timeout (300 ms here)
    await until("two checks every 300 ms despite a 60 s interval", () => capped.checks() >= 2, 8000);
    assert.equal(capped.losses.length, 0);
  } finally {
    await capped.dispose();
  }
});
