// The host's side of the idle agent's reclaim: the hook (src/sandbox/agent-idle-reclaim.ts) never
// throws, asks a guest that cannot reclaim only once, and asks again after other failures; the TCG
// idle trimmer runs it just before a trim of an idle VM, against a real process holding a
// "tcg-jit" memfd as QEMU does with split-wx.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcessByStdio } from "node:child_process";
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { agentIdleReclaim } from "../../src/sandbox/agent-idle-reclaim.js";
import type { AgentReclaim } from "../../src/sandbox/agent-client.js";
import { TcgIdleTrimmer } from "../../src/sandbox/tcg-idle-trimmer.js";
import type { TcgCacheTrimmable, Vm } from "../../src/hypervisor/types.js";
import { KataError } from "../../src/util/errors.js";

const done: AgentReclaim = { agentBytesBefore: 14 << 20, agentBytesAfter: 3 << 20, swappedBytes: 11 << 20, storedBytes: 5 << 20 };

function fakeAgent(answers: (() => Promise<AgentReclaim>)[]): { calls: number; reclaimIdleMemory: () => Promise<AgentReclaim> } {
  const agent = {
    calls: 0,
    reclaimIdleMemory: () => {
      const answer = answers[Math.min(agent.calls, answers.length - 1)]!;
      agent.calls++;
      return answer();
    },
  };
  return agent;
}

/** A process with QEMU's split-wx code buffer: a memfd named tcg-jit, mapped, with 1 MiB written; idle. */
async function splitWxStandIn(): Promise<ChildProcessByStdio<null, Readable, null>> {
  const proc = spawn("python3", ["-c", "import os,mmap,time\nfd=os.memfd_create('tcg-jit')\nos.ftruncate(fd,1<<21)\nm=mmap.mmap(fd,1<<21)\nm[:1<<20]=b'x'*(1<<20)\nprint('ready',flush=True)\ntime.sleep(60)"], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve) => proc.stdout.once("data", () => resolve()));
  return proc;
}

void test("a guest that cannot reclaim (no zram, older agent) is asked once; other failures are asked again; nothing throws", async () => {
  const signal = new AbortController().signal;
  for (const code of ["FAILED_PRECONDITION", "UNIMPLEMENTED"] as const) {
    const agent = fakeAgent([() => Promise.reject(new KataError(code, "no zram"))]);
    const hook = agentIdleReclaim(agent, "vm1");
    await hook(signal);
    await hook(signal);
    assert.equal(agent.calls, 1, `${code}: not asked again`);
  }
  const flaky = fakeAgent([() => Promise.reject(new KataError("DEADLINE_EXCEEDED", "slow")), () => Promise.resolve(done)]);
  const hook = agentIdleReclaim(flaky, "vm2");
  await hook(signal);
  await hook(signal);
  await hook(signal);
  assert.equal(flaky.calls, 3);
  const aborted = AbortSignal.abort();
  await hook(aborted);
  assert.equal(flaky.calls, 3, "not asked once the trimmer stopped");
});

void test("the trimmer runs the reclaim just before it trims an idle VM, and trims once more (without a reclaim) after a whole idle window", async () => {
  const qemu = await splitWxStandIn();
  const order: string[] = [];
  const vm = {
    id: "idle",
    pid: qemu.pid,
    trimTcgCache: () => {
      order.push("trim");
      return Promise.resolve({ beforeBytes: 1 << 20, afterBytes: 0 });
    },
  } as unknown as Vm & TcgCacheTrimmable;
  const agent = fakeAgent([
    () => {
      order.push("reclaim");
      return Promise.resolve(done);
    },
  ]);
  const trimmedAt: number[] = [];
  const trimmer = new TcgIdleTrimmer(vm, { idleWindowMs: 200, sampleMs: 50, policy: { minCacheBytes: 0, rearmCpuMs: 3_600_000 }, beforeTrim: agentIdleReclaim(agent, "idle"), onTrim: () => trimmedAt.push(performance.now()) });
  try {
    for (let i = 0; i < 100 && trimmedAt.length === 0; i++) await sleep(50);
    assert.deepEqual(order, ["reclaim", "trim"]);
    for (let i = 0; i < 100 && trimmedAt.length < 2; i++) await sleep(50);
    assert.equal(trimmedAt.length, 2, "a follow-up trim came");
    // The window restarts when the first trim ends, a moment before its onTrim: 190, not 200.
    assert.ok(trimmedAt[1]! - trimmedAt[0]! >= 190, `the follow-up waits a whole idle window after the first trim (${trimmedAt[1]! - trimmedAt[0]!} ms)`);
    assert.deepEqual(order, ["reclaim", "trim", "trim"], "the follow-up trims without asking the agent again");
    await sleep(1000);
    assert.equal(trimmer.trims, 2, "one follow-up only: then the rearm rule (CPU since the trim) holds");
  } finally {
    await trimmer.stop();
    qemu.kill();
  }
});

void test("without the reclaim, an idle VM is trimmed once until it has worked again (no follow-up)", async () => {
  const qemu = await splitWxStandIn();
  const vm = { id: "idle", pid: qemu.pid, trimTcgCache: () => Promise.resolve({ beforeBytes: 1 << 20, afterBytes: 0 }) } as unknown as Vm & TcgCacheTrimmable;
  const trimmer = new TcgIdleTrimmer(vm, { idleWindowMs: 200, sampleMs: 50, policy: { minCacheBytes: 0, rearmCpuMs: 3_600_000 } });
  try {
    for (let i = 0; i < 100 && trimmer.trims === 0; i++) await sleep(50);
    assert.equal(trimmer.trims, 1);
    await sleep(1000);
    assert.equal(trimmer.trims, 1, "no second trim of a VM that has not worked since");
  } finally {
    await trimmer.stop();
    qemu.kill();
  }
});
