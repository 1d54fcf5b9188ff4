// One conformance suite for every VMM driver (STYLE.md practice 9): the same lifecycle, failure
// and cleanup promises, checked the same way, whether the VMM is a real QEMU or a stand-in Cloud
// Hypervisor / Firecracker that enforces its published API. Each driver's test file calls
// vmmConformance with how to open its Hypervisor and build a VmConfig.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile, stat } from "node:fs/promises";
import { bootVm } from "../../src/sandbox/agent-boot.js";
import { CheckResponse_ServingStatus } from "../../src/protocol/gen/katats/agent/v1/health_pb.js";
import { Health } from "../../src/protocol/gen/katats/agent/v1/health_pb.js";
import { createClient } from "../../src/protocol/ttrpc/index.js";
import type { Hypervisor, VmConfig } from "../../src/hypervisor/types.js";
import { isKataError, KataError } from "../../src/util/errors.js";
import { exists, processesMentioning } from "./vm-support.js";

export interface VmmUnderTest {
  name: string;
  /** A driver for a healthy VMM. */
  hypervisor(): Promise<Hypervisor>;
  config(id: string): VmConfig;
  /** Boot deadline: a real TCG guest needs tens of seconds, a stand-in well under one. */
  deadlineMs: number;
  /** A driver whose VMM refuses the VM description, and what its error must say (REST VMMs). */
  apiError?: { hypervisor(): Promise<Hypervisor>; message: RegExp };
  /** A driver whose guest never answers (checked within a short deadline). */
  silentGuest?: () => Promise<Hypervisor>;
  /** A VMM whose vsock accepts the agent's CONNECT and closes the stream while the VMM runs on. */
  hangupGuest?: () => Promise<Hypervisor>;
  /** A driver whose VMM dies on its own right after accepting the boot. */
  crashingVmm?: () => Promise<Hypervisor>;
  /**
   * A driver with console log cap `capBytes` whose guest prints `bytes` to its serial console before
   * its agent listens (the QEMU driver's cap is proven with a real guest in vm-console.test.ts).
   */
  consoleFlood?: { hypervisor(capBytes: number): Promise<Hypervisor>; bytes: number };
}

async function assertNothingLeft(config: VmConfig): Promise<void> {
  assert.deepEqual(await processesMentioning(config.stateDir), [], "no VMM process left");
  assert.equal(await exists(config.stateDir), false, "no state dir (sockets, console log) left");
}

async function bootError(config: VmConfig, opts: Parameters<typeof bootVm>[1]): Promise<KataError> {
  const err = await bootVm(config, opts).then(
    () => assert.fail("the boot should have failed"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof KataError, `a KataError, got ${String(err)}`);
  return err;
}

export function vmmConformance(s: VmmUnderTest): void {
  void test(`${s.name}: boots, its agent answers over the VMM's agent channel, start twice is refused, stop leaves nothing`, async () => {
    const config = s.config("life");
    const hypervisor = await s.hypervisor();
    const { vm, agent, health, timings } = await bootVm(config, { deadlineMs: s.deadlineMs, hypervisor });
    try {
      assert.equal(vm.state, "running");
      assert.ok(vm.pid !== undefined && vm.pid > 0, "the VMM runs");
      assert.equal((await health.check({})).status, CheckResponse_ServingStatus.SERVING);
      const version = await createClient(agent, Health).version({});
      assert.ok(version.agentVersion !== "", "the agent's Version answer came back over the same channel");
      assert.ok(timings.checkAttempts >= 1);
      await assert.rejects(vm.start(), (e) => isKataError(e, "FAILED_PRECONDITION"));
    } finally {
      agent.close();
    }
    const exit = await vm.stop({ timeoutMs: 5000 });
    assert.equal(exit.reason, "stopped", `a requested stop ends as "stopped" (got ${exit.reason}, exit ${exit.exitCode ?? exit.signal})`);
    assert.equal(vm.state, "stopped");
    assert.deepEqual(await vm.stop(), exit, "stop is idempotent");
    await assertNothingLeft(config);
  });

  void test(`${s.name}: the VMM dying mid-boot fails the boot at once (UNAVAILABLE), nothing left`, async () => {
    const config = s.config("crash");
    const started = Date.now();
    const err = await bootError(config, {
      deadlineMs: s.deadlineMs,
      hypervisor: await s.hypervisor(),
      onStarted: (vm) => {
        if (vm.pid !== undefined) process.kill(vm.pid, "SIGKILL");
      },
    });
    assert.equal(err.code, "UNAVAILABLE", err.message);
    assert.match(err.message, /ended before its agent answered \(crashed/);
    assert.ok(Date.now() - started < s.deadlineMs, "reported before the boot deadline");
    await assertNothingLeft(config);
  });

  const crashing = s.crashingVmm;
  if (crashing !== undefined) {
    void test(`${s.name}: a VMM that crashes on its own while the guest boots fails the boot (UNAVAILABLE, "crashed"), nothing left`, async () => {
      const config = s.config("selfcrash");
      const err = await bootError(config, { deadlineMs: s.deadlineMs, hypervisor: await crashing() });
      assert.equal(err.code, "UNAVAILABLE", err.message);
      assert.match(err.message, /ended before its agent answered \(crashed, VMM exit 139\)/);
      await assertNothingLeft(config);
    });
  }

  const apiError = s.apiError;
  if (apiError !== undefined) {
    void test(`${s.name}: the VMM refusing the VM description fails the boot with the VMM's reason, nothing left`, async () => {
      const config = s.config("apierr");
      const err = await bootError(config, { deadlineMs: s.deadlineMs, hypervisor: await apiError.hypervisor() });
      assert.match(err.message, apiError.message);
      await assertNothingLeft(config);
    });
  }

  const flood = s.consoleFlood;
  if (flood !== undefined) {
    void test(`${s.name}: a guest flooding its console is capped (console.log rotated once at the cap, newest lines kept), nothing left`, async () => {
      const config = s.config("flood");
      const cap = 64 * 1024;
      // The agent answers once the flood is printed: give a loaded host time for it.
      const { vm, agent } = await bootVm(config, { deadlineMs: Math.max(s.deadlineMs, 60_000), hypervisor: await flood.hypervisor(cap) });
      agent.close();
      try {
        // The console reaches the host behind the agent's answer (a pipe or socket in between): wait for its last line.
        const last = /kata-ts agent: listening on vsock port 1024\n$/;
        const deadline = Date.now() + 30_000;
        let current = await readFile(vm.consoleLogPath, "utf8");
        while (!last.test(current) && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50));
          current = await readFile(vm.consoleLogPath, "utf8");
        }
        assert.match(current, last, "the newest lines are kept");
        assert.ok(current.length <= cap, `console.log holds at most the cap (${current.length} bytes)`);
        assert.equal((await stat(`${vm.consoleLogPath}.1`)).size, cap, "console.log.1 is the rotated, full file");
        assert.ok(flood.bytes > 4 * cap, "the guest printed far more than both files hold");
        assert.deepEqual((await readdir(config.stateDir)).filter((f) => f.startsWith("console.log")).sort(), ["console.log", "console.log.1"]);
      } finally {
        await vm.stop({ timeoutMs: 5000 });
      }
      await assertNothingLeft(config);
    });
  }

  const hangup = s.hangupGuest;
  if (hangup !== undefined) {
    void test(`${s.name}: an agent stream closed right after CONNECT while the VMM runs on fails the boot (UNAVAILABLE) well before the deadline, nothing left`, async () => {
      const config = s.config("hangup");
      const deadlineMs = 60_000;
      const started = Date.now();
      const err = await bootError(config, { deadlineMs, hypervisor: await hangup() });
      assert.equal(err.code, "UNAVAILABLE", err.message);
      assert.match(err.message, /connection closed while the VM still runs/);
      assert.ok(Date.now() - started < deadlineMs / 2, `failed at once, not at the deadline (${Date.now() - started} ms)`);
      await assertNothingLeft(config);
    });
  }

  const silent = s.silentGuest;
  if (silent !== undefined) {
    void test(`${s.name}: a guest whose agent never listens fails with DEADLINE_EXCEEDED at the deadline, nothing left`, async () => {
      const config = s.config("silent");
      const err = await bootError(config, { deadlineMs: 1500, hypervisor: await silent() });
      assert.equal(err.code, "DEADLINE_EXCEEDED", err.message);
      await assertNothingLeft(config);
    });
  }
}
