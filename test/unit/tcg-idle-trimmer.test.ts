// The idle trimmer's sampling against real processes (src/sandbox/tcg-idle-trimmer.ts): QEMU's CPU
// time read from /proc/PID/stat, and a VM process without a split-wx code buffer never trimmed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { processCpuMs, TcgIdleTrimmer } from "../../src/sandbox/tcg-idle-trimmer.js";
import type { TcgCacheTrimmable, Vm } from "../../src/hypervisor/types.js";

void test("processCpuMs reads a process's CPU time, and undefined once it is gone", async () => {
  // Busy, then alive until killed: a process that ended by itself could be gone (reaped) before a
  // late read on a loaded host.
  const busy = spawn(process.execPath, ["-e", "const t = Date.now(); while (Date.now() - t < 300) {} setInterval(() => {}, 60_000);"]);
  const pid = busy.pid;
  assert.ok(pid !== undefined);
  await sleep(200);
  const during = await processCpuMs(pid);
  assert.ok(during !== undefined && during >= 0);
  const exited = once(busy, "exit");
  busy.kill();
  await exited;
  assert.equal(await processCpuMs(pid), undefined);
  const mine = await processCpuMs(process.pid);
  assert.ok(mine !== undefined && mine > 0, "this process has used CPU");
});

void test("a VM process without a split-wx code buffer is never trimmed, and the trimmer stops trying", async () => {
  const proc = spawn("sleep", ["30"]);
  let calls = 0;
  // The trimmer sees this process as the VM's QEMU: /proc/PID/maps has no tcg-jit memfd.
  const vm = { id: "no-split-wx", pid: proc.pid, trimTcgCache: () => { calls++; return Promise.resolve({ beforeBytes: 0, afterBytes: 0 }); } } as unknown as Vm & TcgCacheTrimmable;
  const trimmer = new TcgIdleTrimmer(vm, { idleWindowMs: 100, sampleMs: 20, policy: { minCacheBytes: 0 } });
  try {
    await sleep(500);
    assert.equal(calls, 0, "no trim attempted");
    assert.equal(trimmer.trims, 0);
  } finally {
    await trimmer.stop();
    proc.kill();
  }
});
