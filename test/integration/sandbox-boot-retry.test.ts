// A guest that gets stuck while booting is killed and booted again within the sandbox's boot
// deadline: the pod still comes up, the stuck VM and its virtiofsd are gone, and nothing is left
// after destroy. The stuck guest is real: its PID 1 is busybox usleep, so after the kernel's boot
// messages its console stays silent, exactly like the hang this guards against.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { BootStalledError } from "../../src/hypervisor/boot-progress.js";
import { QemuHypervisor } from "../../src/hypervisor/qemu/index.js";
import type { Hypervisor, Vm, VmConfig } from "../../src/hypervisor/types.js";
import { runSpec } from "../../src/sandbox/default-spec.js";
import { Sandbox } from "../../src/sandbox/sandbox.js";
import { leftovers, useVmFixture } from "./agent-container-vm-fixture.js";
import { busyboxPid1Cmdline } from "./vm-support.js";

const fx = useVmFixture();

/** The real QEMU driver, whose first `stuckBoots` VMs get a guest that never starts its agent. */
async function hypervisorWithStuckBoots(stuckBoots: number): Promise<{ hypervisor: Hypervisor; vms: Vm[] }> {
  const real = await QemuHypervisor.open();
  const vms: Vm[] = [];
  const hypervisor: Hypervisor = {
    capabilities: () => real.capabilities(),
    create: async (config: VmConfig) => {
      const stuck = vms.length < stuckBoots;
      const vm = await real.create(stuck ? { ...config, kernelCmdline: busyboxPid1Cmdline(fx().assets, "usleep", ["100000000"]) } : config);
      vms.push(vm);
      return vm;
    },
  };
  return { hypervisor, vms };
}

void test("a guest stuck mid-boot is booted again and the sandbox runs; the stuck VM is gone", async () => {
  const { hypervisor, vms } = await hypervisorWithStuckBoots(1);
  const sb = await Sandbox.create({ id: "retry", assets: fx().assets, hypervisor, bootTimeoutMs: 180_000, bootStallMs: 10_000 });
  try {
    assert.equal(vms.length, 2, "one stuck boot, then one that came up");
    assert.equal(vms[0]?.state, "stopped", "the stuck VM was stopped");
    assert.equal(vms[0]?.pid, undefined, "and its QEMU reaped");
    const ctr = await sb.createContainer({ id: "c1", spec: runSpec({ args: ["uname", "-r"] }), rootfs: fx().rootfs });
    const p = await ctr.start();
    const out = new PassThrough();
    let text = "";
    out.on("data", (b: Buffer) => (text += b.toString()));
    const pump = p.pumpOutput("stdout", out);
    const exit = await p.wait(AbortSignal.timeout(120_000));
    await pump;
    await ctr.delete();
    assert.equal(exit.status, 0);
    assert.equal(text.trim(), fx().assets.kernelRelease, "the container runs in the second VM's guest kernel");
  } finally {
    await sb.destroy();
  }
  assert.deepEqual(leftovers(fx().dir, fx().stateRoot), [], "no QEMU, virtiofsd, mount or state dir left");
});

void test("a guest stuck on every attempt fails the sandbox with BootStalledError after the attempts; nothing left", async () => {
  const { hypervisor, vms } = await hypervisorWithStuckBoots(5);
  const err = await Sandbox.create({ id: "stuck", assets: fx().assets, hypervisor, bootTimeoutMs: 180_000, bootStallMs: 10_000, bootAttempts: 2 }).then(
    () => assert.fail("the sandbox should not come up"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof BootStalledError, `a BootStalledError, got ${String(err)}`);
  assert.match(err.message, /its console was silent for 1[0-9] s/);
  assert.equal(vms.length, 2, "two attempts, no more");
  assert.ok(vms.every((vm) => vm.state === "stopped"), "every attempt's VM stopped");
  assert.deepEqual(leftovers(fx().dir, fx().stateRoot), [], "no QEMU, virtiofsd, mount or state dir left");
});
