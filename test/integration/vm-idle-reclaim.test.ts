// Compressing an idle VM's agent into the guest's zram swap ([hypervisor.qemu]
// tcg_idle_reclaim_agent: src/sandbox/agent-idle-reclaim.ts, src/agent/idle-reclaim.ts) on a real
// QEMU (TCG, split-wx) and the real guest: the idle trimmer has the agent reclaim its memory
// before the trim, the agent still answers and execs print what they should afterwards, and a
// container over its memory limit is OOM-killed rather than swapped (as on runc, where a node has
// no swap), also one whose spec sets no swap limit of its own. One sandbox, reused by every test;
// nothing left afterwards. Needs guest assets whose kernel has zram (skipped otherwise).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { Sandbox } from "../../src/sandbox/sandbox.js";
import { runSpec } from "../../src/sandbox/default-spec.js";
import { QemuHypervisor } from "../../src/hypervisor/qemu/index.js";
import type { SandboxContainer } from "../../src/sandbox/container.js";
import { leftovers, makeVmFixture, type VmFixture } from "./agent-container-vm-fixture.js";
import { AGENT_CGROUP_PARAM } from "../../src/protocol/contract/guest.js";

let fx: VmFixture;
let sb: Sandbox | undefined;
let long: SandboxContainer | undefined;
let hasZram = false;

async function execOut(ctr: SandboxContainer, id: string, script: string): Promise<string> {
  const p = await ctr.exec(id, { args: ["sh", "-c", script], cwd: "/", user: { uid: 0, gid: 0 }, env: ["PATH=/bin"] });
  const out = new PassThrough();
  let text = "";
  out.on("data", (b: Buffer) => (text += b.toString()));
  await p.pumpOutput("stdout", out);
  assert.equal((await p.wait(AbortSignal.timeout(120_000))).status, 0, `exec ${id} exits 0`);
  return text;
}

/** pswpout (pages written to swap so far), "Used" of /dev/zram0 in /proc/swaps (KiB). */
async function swapState(ctr: SandboxContainer, id: string): Promise<{ pswpout: number; usedKiB: number }> {
  const text = await execOut(ctr, id, "grep '^pswpout ' /proc/vmstat; grep zram0 /proc/swaps || true");
  const pswpout = Number(/^pswpout (\d+)/m.exec(text)?.[1] ?? NaN);
  const swapLine = text.split("\n").find((l) => l.includes("zram0"));
  return { pswpout, usedKiB: Number(swapLine?.trim().split(/\s+/)[3] ?? 0) };
}

before(async () => {
  fx = await makeVmFixture();
  sb = await Sandbox.create({
    id: "idlereclaim",
    // What podAssets adds for [hypervisor.qemu] tcg_idle_reclaim_agent.
    assets: { ...fx.assets, kernelCmdline: [...fx.assets.kernelCmdline, AGENT_CGROUP_PARAM] },
    memoryMiB: 512,
    accel: "tcg",
    bootTimeoutMs: 300_000,
    hypervisor: await QemuHypervisor.open({ tcgSplitWx: true }),
    // A short window so the test need not wait a minute; the default policy otherwise.
    tcgIdleTrim: { idleWindowMs: 3000, sampleMs: 500 },
    idleReclaimAgent: true,
  });
  long = await sb.createContainer({ id: "long", spec: runSpec({ args: ["sleep", "100000"] }), rootfs: fx.rootfs });
  await long.start();
  hasZram = (await execOut(long, "probe", "test -e /sys/block/zram0 && echo yes || echo no")).trim() === "yes";
});

after(async () => {
  await long?.delete();
  await sb?.destroy();
  const left = fx ? leftovers(fx.dir, fx.stateRoot) : [];
  await fx?.cleanup();
  assert.deepEqual(left, [], "nothing left after the sandbox is destroyed");
});

void test("idle reclaim: the idle trimmer has the agent compress its memory into zram; the agent answers and execs work after it", async (t) => {
  if (!hasZram) return t.skip("the guest kernel has no zram (assets from before the zram kernel options)");
  const s = sb;
  const ctr = long;
  assert.ok(s !== undefined && ctr !== undefined);
  const start = s.tcgTrims ?? 0;
  for (let i = 0; i < 240 && (s.tcgTrims ?? 0) === start; i++) await sleep(500);
  assert.ok((s.tcgTrims ?? 0) > start, "the idle VM was trimmed within 2 minutes");
  const state = await swapState(ctr, "after-trim");
  assert.ok(state.pswpout > 512, `the agent's pages went to swap: ${state.pswpout} pages written`);
  assert.ok(state.usedKiB > 1024, `zram swap holds them: ${state.usedKiB} KiB used`);
  assert.equal((await s.agent.version()).bootId.length, 36, "the agent answers after the reclaim");
  for (let i = 0; i < 3; i++) assert.equal(await execOut(ctr, `e${i}`, `echo exec-${i}; cat /proc/sys/kernel/hostname`), `exec-${i}\nkata-ts\n`);
  // The agent can be asked again at any time, and says what it did.
  const again = await s.agent.reclaimIdleMemory(60_000);
  assert.ok(again.agentBytesAfter <= again.agentBytesBefore, `agent cgroup ${again.agentBytesBefore} -> ${again.agentBytesAfter} bytes`);
  assert.ok(again.swappedBytes > 1024 * 1024 && again.storedBytes < again.swappedBytes, `zram holds ${again.swappedBytes} bytes in ${again.storedBytes}`);
  assert.equal(await execOut(ctr, "after-again", "echo still"), "still\n");
});

void test("idle reclaim: a container over its memory limit is OOM-killed, not swapped, also without a swap limit of its own", async (t) => {
  if (!hasZram) return t.skip("the guest kernel has no zram (assets from before the zram kernel options)");
  const s = sb;
  const ctr = long;
  assert.ok(s !== undefined && ctr !== undefined);
  // Swap is on (the first test, or this reclaim).
  await s.agent.reclaimIdleMemory(60_000);
  const before = await swapState(ctr, "before-hog");
  assert.ok(before.usedKiB > 0, "swap is on and in use");
  const spec = runSpec({ args: ["sh", "-c", "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo survived"], memoryLimitBytes: 32 * 1024 * 1024 });
  // No memory.swap in the spec: crun then leaves the container's own memory.swap.max at max.
  const memory = spec.linux?.resources?.memory as { limit?: number; swap?: number } | undefined;
  assert.ok(memory !== undefined);
  delete memory.swap;
  const oom = s.agent.nextOom(AbortSignal.timeout(180_000));
  const hog = await s.createContainer({ id: "hog", spec, rootfs: fx.rootfs });
  try {
    const p = await hog.start();
    const out = new PassThrough();
    let text = "";
    out.on("data", (b: Buffer) => (text += b.toString()));
    await p.pumpOutput("stdout", out);
    const exit = await p.wait(AbortSignal.timeout(180_000));
    assert.notEqual(text, "survived\n", "the container did not get past its limit");
    assert.notEqual(exit.status, 0);
    assert.equal(await oom, "hog", "an OOM kill, named");
  } finally {
    await hog.delete();
  }
  const after = await swapState(ctr, "after-hog");
  // 32 MiB of a container's pages would be 8192 pages written; what moved is at most the agent's own.
  assert.ok(after.pswpout - before.pswpout < 2048, `the container's memory did not go to swap: ${after.pswpout - before.pswpout} pages written meanwhile`);
});
