// The Firecracker driver against a stand-in firecracker (a real process serving the REST API on a
// real unix socket) that checks every request against the published swagger schemas: the shared
// conformance suite, then what this driver sends, and the features Firecracker cannot provide
// (block root filesystems: vmm-firecracker-block.test.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Firecracker, type FirecrackerOptions } from "../../src/hypervisor/firecracker/index.js";
import { bootVm } from "../../src/sandbox/agent-boot.js";
import { isKataError } from "../../src/util/errors.js";
import { NoSharedFsError } from "../../src/hypervisor/no-shared-fs.js";
import type { Standin } from "../harness/vmm-standin/fixture.js";
import { floodBytes, type Fault } from "../harness/vmm-standin/common.js";
import { vmmConformance } from "./vmm-conformance.js";
import { standinSuite, standinVmConfig } from "./vmm-standin-support.js";
import { exists } from "./vm-support.js";

const suite = standinSuite("firecracker", "Firecracker API");
/** Stand-ins started so far (each healthy VM of the conformance suite gets its own). */
let count = 0;

async function driver(name: string, fault: Fault = "none", opts: Omit<FirecrackerOptions, "binary"> = {}): Promise<{ hv: Firecracker; s: Standin }> {
  const s = await suite.standin(name, fault);
  count++;
  return { hv: await Firecracker.open({ binary: s.binary, ...opts }), s };
}

vmmConformance({
  name: "firecracker (stand-in)",
  hypervisor: async () => (await driver(`ok-${count}`)).hv,
  config: (id) => standinVmConfig(suite.files, suite.root, `conf-${id}`),
  deadlineMs: 10_000,
  apiError: { hypervisor: async () => (await driver("apierr", "api-error")).hv, message: /firecracker refused PUT \/machine-config \(HTTP 400\): The memory size/ },
  silentGuest: async () => (await driver("silent", "silent-guest")).hv,
  hangupGuest: async () => (await driver("hangup", "agent-hangup")).hv,
  crashingVmm: async () => (await driver("selfcrash", "crash-on-boot")).hv,
  consoleFlood: { hypervisor: async (cap) => (await driver("flood", "console-flood", { consoleLogMaxBytes: cap })).hv, bytes: floodBytes },
});

void test("firecracker: the pre-boot requests describe the VM (machine-config, boot-source, read-only drive, tap, vsock) before InstanceStart; the console is its stdout", async () => {
  const { hv, s } = await driver("describe");
  const config = standinVmConfig(suite.files, suite.root, "describe", { netDevices: [{ tapName: "tap0_kata", mac: "02:42:0a:00:00:05" }] });
  const { vm, agent } = await bootVm(config, { deadlineMs: 10_000, hypervisor: hv });
  const console = await readFile(vm.consoleLogPath, "utf8");
  agent.close();
  const exit = await vm.stop();
  const puts = (await s.entries()).flatMap((e) => (e.request?.method === "PUT" ? [e.request] : []));
  assert.deepEqual(puts.map((p) => p.path), ["/machine-config", "/boot-source", "/drives/rootfs", "/network-interfaces/eth0", "/vsock", "/actions"]);
  const body = (path: string): unknown => puts.find((p) => p.path === path)?.body;
  assert.deepEqual(body("/machine-config"), { vcpu_count: 2, mem_size_mib: 512, smt: false });
  const boot = body("/boot-source") as { kernel_image_path: string; initrd_path: string; boot_args: string };
  assert.equal(boot.kernel_image_path, suite.files.kernel);
  assert.equal(boot.initrd_path, suite.files.initrd);
  assert.match(boot.boot_args, /^console=ttyS0 reboot=k panic=1 pci=off .*root=\/dev\/vda/);
  assert.deepEqual(body("/drives/rootfs"), { drive_id: "rootfs", path_on_host: suite.files.rootfs, is_root_device: false, is_read_only: true });
  assert.deepEqual(body("/network-interfaces/eth0"), { iface_id: "eth0", host_dev_name: "tap0_kata", guest_mac: "02:42:0a:00:00:05" });
  assert.deepEqual(body("/vsock"), { guest_cid: 3, uds_path: join(config.stateDir, "vsock.sock") });
  assert.deepEqual(body("/actions"), { action_type: "InstanceStart" });
  assert.match(console, /stand-in guest/, "the serial console (Firecracker's stdout) reached the console log");
  assert.equal(exit.reason, "stopped", "no shutdown request exists: SIGTERM ends it, which counts as a requested stop");
});

void test("firecracker: the guest root is the image as a read-only block device even when the assets were built for a virtio-pmem root", async () => {
  const { hv, s } = await driver("blockroot");
  const config = standinVmConfig(suite.files, suite.root, "blockroot", {
    rootfsDevice: "virtio-pmem",
    kernelCmdline: ["root=/dev/pmem0", "rootfstype=erofs", "rootflags=dax=always", "rootwait", "ro", "init=/sbin/kata-ts-init"],
  });
  const { vm, agent } = await bootVm(config, { deadlineMs: 10_000, hypervisor: hv });
  agent.close();
  await vm.stop();
  const puts = (await s.entries()).flatMap((e) => (e.request?.method === "PUT" ? [e.request] : []));
  const boot = puts.find((p) => p.path === "/boot-source")?.body as { boot_args: string };
  assert.match(boot.boot_args, / root=\/dev\/vda rootfstype=erofs rootwait ro init=\/sbin\/kata-ts-init$/);
  assert.doesNotMatch(boot.boot_args, /pmem0|dax/);
  assert.deepEqual(puts.find((p) => p.path === "/drives/rootfs")?.body, { drive_id: "rootfs", path_on_host: suite.files.rootfs, is_root_device: false, is_read_only: true });
  assert.equal(puts.some((p) => p.path.startsWith("/pmem")), false, "no pmem device");
});

void test("firecracker: a VM with a virtio-fs share is refused before anything starts, saying Firecracker has no virtio-fs", async () => {
  const { hv } = await driver("nofs");
  const config = standinVmConfig(suite.files, suite.root, "nofs", { sharedFs: { socketPath: join(suite.root, "virtiofsd.sock"), tag: "kataShared" } });
  await assert.rejects(hv.create(config), (e) => e instanceof NoSharedFsError && isKataError(e, "FAILED_PRECONDITION") && /firecracker cannot share host directories.*no virtio-fs/.test(e.message));
  assert.equal(await exists(config.stateDir), false);
  assert.equal(hv.capabilities().sharedFs, undefined);
});
