// The scheduler figures that tell a starved VM from a stuck one, read from real processes: two CPU
// burners pinned to one CPU wait for it in turn (run_delay grows), a stopped process does not.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { processCpuSeconds, runQueueWaitSeconds } from "../../src/util/proc-sched.js";

function burner(): ChildProcess {
  // taskset pins both to CPU 0 so that each has to wait for the other.
  return spawn("taskset", ["-c", "0", "sh", "-c", "while :; do :; done"], { stdio: "ignore" });
}

void test("proc-sched: a process sharing one CPU with another waits for it; a stopped one does not", async () => {
  const a = burner();
  const b = burner();
  const stopped = spawn("sleep", ["60"], { stdio: "ignore" });
  try {
    await sleep(200);
    stopped.kill("SIGSTOP");
    // It stops only once it has run to take the signal, and may wait for a CPU for that (counted as
    // run_delay): measure from when it is stopped.
    for (let i = 0; i < 200 && !/^\d+ \(.*\) T /.test(await readFile(`/proc/${stopped.pid}/stat`, "utf8").catch(() => "")); i++) await sleep(10);
    const [a0, s0] = [await runQueueWaitSeconds(a.pid), await runQueueWaitSeconds(stopped.pid)];
    await sleep(1500);
    const [a1, s1] = [await runQueueWaitSeconds(a.pid), await runQueueWaitSeconds(stopped.pid)];
    assert.ok(a0 !== undefined && a1 !== undefined && s0 !== undefined && s1 !== undefined, "schedstat is readable");
    assert.ok(a1 - a0 > 0.3, `a burner sharing its CPU waited ${(a1 - a0).toFixed(2)} s of 1.5 s`);
    assert.ok(s1 - s0 < 0.05, `a stopped process does not wait for a CPU (${(s1 - s0).toFixed(3)} s)`);
    assert.ok(((await processCpuSeconds(a.pid)) ?? 0) > 0.2, "the burner used CPU");
    assert.equal(await runQueueWaitSeconds(999_999_999), undefined, "no such process: undefined");
  } finally {
    for (const p of [a, b, stopped]) p.kill("SIGKILL");
  }
});
