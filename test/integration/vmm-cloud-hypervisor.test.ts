// The Cloud Hypervisor driver against a stand-in cloud-hypervisor (a real process serving the REST
// API on a real unix socket) that checks every request against the published OpenAPI schemas:
// the shared conformance suite, then what this driver sends and how it reports errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { CloudHypervisor, type CloudHypervisorOptions } from "../../src/hypervisor/cloud-hypervisor/index.js";
import { bootVm } from "../../src/sandbox/agent-boot.js";
import { isKataError } from "../../src/util/errors.js";
import type { Standin } from "../harness/vmm-standin/fixture.js";
import { floodBytes, type Fault } from "../harness/vmm-standin/common.js";
import type { ChVmConfigSpec } from "../harness/vmm-standin/ch-spec.js";
import { vmmConformance } from "./vmm-conformance.js";
import { standinSuite, standinVmConfig } from "./vmm-standin-support.js";

const suite = standinSuite("cloud-hypervisor", "Cloud Hypervisor API");
/** Stand-ins started so far (each healthy VM of the conformance suite gets its own). */
let count = 0;

async function driver(name: string, fault: Fault = "none", opts: Omit<CloudHypervisorOptions, "binary"> = {}): Promise<{ hv: CloudHypervisor; s: Standin }> {
  const s = await suite.standin(name, fault);
  count++;
  return { hv: await CloudHypervisor.open({ binary: s.binary, ...opts }), s };
}

vmmConformance({
  name: "cloud-hypervisor (stand-in)",
  hypervisor: async () => (await driver(`ok-${count}`)).hv,
  config: (id) => standinVmConfig(suite.files, suite.root, `conf-${id}`),
  deadlineMs: 10_000,
  apiError: { hypervisor: async () => (await driver("apierr", "api-error")).hv, message: /cloud-hypervisor refused PUT \/api\/v1\/vm\.create \(HTTP 400\): .*Invalid image type/ },
  silentGuest: async () => (await driver("silent", "silent-guest")).hv,
  hangupGuest: async () => (await driver("hangup", "agent-hangup")).hv,
  crashingVmm: async () => (await driver("selfcrash", "crash-on-boot")).hv,
  consoleFlood: { hypervisor: async (cap) => (await driver("flood", "console-flood", { consoleLogMaxBytes: cap })).hv, bytes: floodBytes },
});

async function createBody(s: Standin): Promise<ChVmConfigSpec> {
  const create = (await s.entries()).find((e) => e.request?.path === "/api/v1/vm.create");
  assert.ok(create?.request?.body !== undefined, "vm.create was sent with a body");
  return create.request.body as ChVmConfigSpec;
}

void test("cloud-hypervisor: vm.create describes the kata-ts VM (payload, shared memory for virtio-fs, fs, tap, vsock, serial on stdout); stop is vm.shutdown + vmm.shutdown", async () => {
  const { hv, s } = await driver("describe");
  const config = standinVmConfig(suite.files, suite.root, "describe", {
    sharedFs: { socketPath: join(suite.root, "virtiofsd.sock"), tag: "kataShared" },
    netDevices: [{ tapName: "tap0_kata", mac: "02:42:0a:00:00:05" }],
  });
  const { vm, agent } = await bootVm(config, { deadlineMs: 10_000, hypervisor: hv });
  const console = await readFile(vm.consoleLogPath, "utf8");
  agent.close();
  const exit = await vm.stop();
  const body = await createBody(s);
  assert.deepEqual(body.cpus, { boot_vcpus: 2, max_vcpus: 2 });
  assert.deepEqual(body.memory, { size: 512 * 1024 * 1024, shared: true }, "virtiofsd needs guest RAM in a shared mapping");
  assert.equal(body.payload.kernel, suite.files.kernel);
  assert.equal(body.payload.initramfs, suite.files.initrd);
  assert.match(body.payload.cmdline ?? "", /^console=ttyS0 .*root=\/dev\/vda rootfstype=erofs ro init=\/sbin\/kata-ts-init$/);
  assert.deepEqual(body.disks, [{ path: suite.files.rootfs, readonly: true, id: "rootfs" }]);
  assert.deepEqual(body.fs, [{ tag: "kataShared", socket: join(suite.root, "virtiofsd.sock"), num_queues: 1, queue_size: 1024, id: "fs0" }]);
  assert.deepEqual(body.net, [{ tap: "tap0_kata", mac: "02:42:0a:00:00:05", id: "net0" }]);
  assert.deepEqual(body.vsock, { cid: 3, socket: join(config.stateDir, "vsock.sock"), id: "vsock0" });
  assert.deepEqual(body.serial, { mode: "Tty" }, "the serial console on its stdout, read into the capped console log");
  assert.match(console, /stand-in guest/, "the guest console reached the console log");
  assert.match(exit.consoleTail ?? "", /stand-in guest/, "the console tail outlives the state dir");
  const requests = (await s.requests()).filter((r) => r !== "GET /api/v1/vmm.ping");
  assert.deepEqual(requests, ["PUT /api/v1/vm.create", "PUT /api/v1/vm.boot", "PUT /api/v1/vm.shutdown", "PUT /api/v1/vmm.shutdown"]);
  assert.equal(exit.reason, "stopped");
});

void test("cloud-hypervisor: image_device pmem attaches the image as virtio-pmem (writes discarded) and roots the guest on /dev/pmem0; no shared memory without a share", async () => {
  const { hv, s } = await driver("pmem", "none", { rootImage: "pmem" });
  const { vm, agent } = await bootVm(standinVmConfig(suite.files, suite.root, "pmem"), { deadlineMs: 10_000, hypervisor: hv });
  agent.close();
  await vm.stop();
  const body = await createBody(s);
  assert.deepEqual(body.pmem, [{ file: suite.files.rootfs, discard_writes: true, id: "rootfs" }]);
  assert.equal(body.disks, undefined);
  assert.match(body.payload.cmdline ?? "", /root=\/dev\/pmem0/);
  assert.equal(body.memory?.shared, false);
  assert.equal(body.fs, undefined);
});

void test("cloud-hypervisor: accel=tcg is refused before anything starts (KVM only), and a missing binary says how to install one", async () => {
  const { hv } = await driver("tcg");
  await assert.rejects(hv.create(standinVmConfig(suite.files, suite.root, "tcg", { accel: "tcg" })), (e) => isKataError(e, "FAILED_PRECONDITION") && /only under KVM/.test(e.message));
  await assert.rejects(CloudHypervisor.open({ binary: join(suite.root, "no-such-cloud-hypervisor") }), (e) => isKataError(e, "NOT_FOUND") && /does not package cloud-hypervisor/.test(e.message));
  assert.equal(hv.capabilities().name, "cloud-hypervisor");
  assert.equal(hv.capabilities().version, "38.0");
});
