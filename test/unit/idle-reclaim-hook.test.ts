// The host's side of the idle agent's reclaim: the hook (src/sandbox/agent-idle-reclaim.ts) never
// throws, asks a guest that cannot reclaim only once, and asks again after other failures; the TCG
// idle trimmer runs it just before a trim of an idle VM, against a real process holding a
// "tcg-jit" memfd as QEMU does with split-wx.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
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

void test("the trimmer runs the reclaim just before it trims an idle VM", async () => {
  // A process with QEMU's split-wx code buffer: a memfd named tcg-jit, mapped, with 1 MiB written.
  const qemu = spawn("python3", ["-c", "import os,mmap,time\nfd=os.memfd_create('tcg-jit')\nos.ftruncate(fd,1<<21)\nm=mmap.mmap(fd,1<<21)\nm[:1<<20]=b'x'*(1<<20)\nprint('ready',flush=True)\ntime.sleep(60)"], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve) => qemu.stdout.once("data", () => resolve()));
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
  const trimmer = new TcgIdleTrimmer(vm, { idleWindowMs: 200, sampleMs: 50, policy: { minCacheBytes: 0, rearmCpuMs: 3_600_000 }, beforeTrim: agentIdleReclaim(agent, "idle") });
  try {
    for (let i = 0; i < 100 && trimmer.trims === 0; i++) await sleep(50);
    assert.equal(trimmer.trims, 1);
    assert.deepEqual(order, ["reclaim", "trim"]);
  } finally {
    await trimmer.stop();
    qemu.kill();
  }
});
