// What a user sees when a VM cannot come up: a clear KataError within the boot deadline, the VM
// killed and reaped, and nothing left on the host (no QEMU process, no socket, no state dir).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { bootVm } from "../../src/sandbox/agent-boot.js";
import { BootStalledError } from "../../src/hypervisor/boot-progress.js";
import { QemuHypervisor } from "../../src/hypervisor/qemu/index.js";
import { isKataError, KataError } from "../../src/util/errors.js";
import type { GuestAssets } from "../../src/guest/assets.js";
import type { VmConfig } from "../../src/hypervisor/types.js";
import { assets, busyboxPid1Cmdline, cleanupRoot, exists, processesMentioning, tempRoot, vmConfig } from "./vm-support.js";

let root: string;
let guest: GuestAssets;

before(async () => {
  guest = await assets();
  root = await tempRoot("vm-fail");
});

after(async () => {
  const leftovers = await processesMentioning(root);
  await cleanupRoot(root);
  assert.deepEqual(leftovers, [], "no QEMU process may outlive the tests");
});

async function assertNothingLeft(config: VmConfig): Promise<void> {
  assert.deepEqual(await processesMentioning(config.stateDir), [], "no QEMU process left");
  assert.equal(await exists(config.stateDir), false, "no state dir (sockets, console log) left");
}

async function bootFailure(config: VmConfig, deadlineMs: number, hypervisor?: QemuHypervisor): Promise<KataError> {
  const err = await bootVm(config, { deadlineMs, ...(hypervisor === undefined ? {} : { hypervisor }) }).then(
    () => assert.fail("boot should have failed"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof KataError, `a KataError, got ${String(err)}`);
  return err;
}

void test("a missing kernel is NOT_FOUND before anything is spawned", async () => {
  const config = vmConfig(guest, root, "nokernel", { kernelPath: join(root, "no-such-vmlinux") });
  const err = await bootFailure(config, 30_000);
  assert.equal(err.code, "NOT_FOUND");
  assert.match(err.message, /guest kernel .*no-such-vmlinux does not exist/);
  await assertNothingLeft(config);
});

void test("a corrupt rootfs image: the agent never comes, a clear error names the console, the VM is killed", async () => {
  const image = join(root, "garbage.img");
  await writeFile(image, randomBytes(8 * 1024 * 1024));
  const config = vmConfig(guest, root, "corrupt", { rootfsPath: image });
  const err = await bootFailure(config, 60_000);
  // Either the guest gives up and powers off (UNAVAILABLE: ended before the agent answered) or it
  // hangs until the deadline (DEADLINE_EXCEEDED); both say so and show the console.
  assert.ok(err.code === "UNAVAILABLE" || err.code === "DEADLINE_EXCEEDED", `code ${err.code}`);
  assert.match(err.message, /console log tail:\n.*\S/s);
  await assertNothingLeft(config);
});

void test("a guest whose agent never answers: DEADLINE_EXCEEDED with the console tail, VM killed, nothing left", async () => {
  // PID 1 is busybox usleep for 100 s: the guest is alive but nobody opens the agent port.
  const config = vmConfig(guest, root, "silent", { kernelCmdline: busyboxPid1Cmdline(guest, "usleep", ["100000000"]) });
  const err = await bootFailure(config, 8_000);
  assert.equal(err.code, "DEADLINE_EXCEEDED");
  assert.match(err.message, /agent of VM silent did not answer within 8\.0s; console log tail:/);
  await assertNothingLeft(config);
});

void test("a guest that goes silent mid-boot is reported stuck long before the deadline, with its vCPU state; nothing left", async () => {
  // PID 1 is busybox usleep: the kernel prints its boot, then the console stays silent for good.
  const config = vmConfig(guest, root, "stuck", { kernelCmdline: busyboxPid1Cmdline(guest, "usleep", ["100000000"]) });
  const started = Date.now();
  const err = await bootVm(config, { deadlineMs: 120_000, stallMs: 10_000 }).then(
    () => assert.fail("boot should have failed"),
    (e: unknown) => e,
  );
  const elapsedMs = Date.now() - started;
  assert.ok(err instanceof BootStalledError, `a BootStalledError, got ${String(err)}`);
  assert.equal(err.code, "DEADLINE_EXCEEDED");
  assert.match(err.message, /VM stuck stopped making progress while booting: its console was silent for 1[0-9] s/);
  assert.match(err.message, /the VMM used \d+\.\d s of CPU \(the guest sits idle/, "an idle guest is told apart from a spinning one");
  assert.match(err.message, /vCPU 0 at RIP [0-9a-f]{16}/, "QEMU's view of the stuck vCPU");
  assert.match(err.message, /console log tail:\n.*Run \/bin\/usleep as init process/s);
  assert.ok(elapsedMs < 90_000, `reported after ${elapsedMs} ms, not at the 120 s deadline`);
  await assertNothingLeft(config);
});

void test("an agent port name the guest does not serve: the boot fails within the deadline, nothing left", async () => {
  const config = vmConfig(guest, root, "wrongport");
  const err = await bootFailure(config, 45_000, await QemuHypervisor.open({ agentPortName: "nobody.0" }));
  assert.ok(err.code === "UNAVAILABLE" || err.code === "DEADLINE_EXCEEDED", `code ${err.code}`);
  await assertNothingLeft(config);
});

void test("a state dir that is already in use is refused (ALREADY_EXISTS) and left untouched", async () => {
  const config = vmConfig(guest, root, "busy");
  await mkdir(config.stateDir, { recursive: true });
  await writeFile(join(config.stateDir, "qmp.sock"), "");
  const vm = await (await QemuHypervisor.open()).create(config);
  await assert.rejects(vm.start(), (e) => isKataError(e, "ALREADY_EXISTS"));
  assert.deepEqual(await readdir(config.stateDir), ["qmp.sock"], "another VM's files are not removed");
  assert.deepEqual(await processesMentioning(config.stateDir), []);
});

void test("QEMU refusing to start (virtio-fs daemon socket missing) fails start with QEMU's message, and cleans up", async () => {
  const config = vmConfig(guest, root, "nofsd", { sharedFs: { socketPath: join(root, "no-virtiofsd.sock"), tag: "kata" } });
  const vm = await (await QemuHypervisor.open()).create(config);
  const err = await vm.start().then(
    () => assert.fail("start should fail"),
    (e: unknown) => e,
  );
  assert.ok(isKataError(err, "INTERNAL"), String(err));
  assert.match((err as Error).message, /QEMU exited during start-up: .*no-virtiofsd\.sock/);
  assert.equal(vm.state, "stopped");
  await assertNothingLeft(config);
});
