// The guest agent's channel choice in a real guest: the project kernel and a root image staged from
// this tree (agent bundle, socat: what build-assets puts there, without the V8 snapshot), booted by
// QEMU. Without kata_ts.agent the agent serves the virtio-serial port and answers through it. With
// kata_ts.agent=vsock:1024 (what the Cloud Hypervisor and Firecracker drivers pass) it serves vsock
// through socat instead; QEMU here cannot offer a vsock device (no /dev/vhost-vsock on this host),
// so the proof stops at what the guest says on its console: it chose vsock, started the bridge,
// and found no vsock device. A host connection over real vsock is not possible on this machine.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { bundleAgent } from "../../src/guest/agent-bundle.js";
import { buildErofs, stageRootfs } from "../../src/guest/rootfs.js";
import type { GuestAssets } from "../../src/guest/assets.js";
import { QemuHypervisor } from "../../src/hypervisor/qemu/index.js";
import { agentVsockParam } from "../../src/protocol/contract/guest.js";
import { Health } from "../../src/protocol/gen/katats/agent/v1/health_pb.js";
import { createClient } from "../../src/protocol/ttrpc/index.js";
import { bootVm } from "../../src/sandbox/agent-boot.js";
import { assets, cleanupRoot, exists, processesMentioning, tempRoot, vmConfig } from "./vm-support.js";

let root: string;
let guest: GuestAssets;

before(async () => {
  root = await tempRoot("agent-channel");
  const a = await assets();
  const image = join(root, "rootfs.erofs");
  const stage = await stageRootfs({ workDir: join(root, "work"), agentCode: (await bundleAgent()).code, nodeArgs: [], out: image });
  await buildErofs(stage, image);
  // This tree's agent and socat on the installed kernel; a block root (microvm cannot map pmem).
  const rootParams = a.kernelCmdline.map((p) => (p === "root=/dev/pmem0" ? "root=/dev/vda" : p)).filter((p) => p !== "rootflags=dax=always");
  guest = { ...a, rootfsPath: image, rootfsDevice: "virtio-blk", kernelCmdline: rootParams };
});

after(async () => {
  const left = await processesMentioning(root);
  await cleanupRoot(root);
  assert.deepEqual(left, [], "no QEMU outlives the tests");
});

void test("guest agent without kata_ts.agent: serves the virtio-serial port, and answers over it", { timeout: 300_000 }, async () => {
  const config = vmConfig(guest, root, "serial");
  const { vm, agent } = await bootVm(config, { deadlineMs: 180_000, hypervisor: await QemuHypervisor.open() });
  let console: string;
  try {
    assert.notEqual((await createClient(agent, Health).version({})).agentVersion, "");
    console = await readFile(vm.consoleLogPath, "utf8");
  } finally {
    agent.close();
    await vm.stop();
  }
  assert.match(console, /ready on \/dev\/vport\d+p\d+/);
  assert.doesNotMatch(console, /vsock bridge|ready on vsock/);
  assert.equal(await exists(config.stateDir), false);
});

void test("guest agent with kata_ts.agent=vsock:1024: serves vsock through socat, not the virtio-serial port; says when the VM has no vsock device", { timeout: 300_000 }, async () => {
  const config = vmConfig(guest, root, "vsock", { kernelCmdline: [...guest.kernelCmdline, agentVsockParam()] });
  const vm = await (await QemuHypervisor.open()).create(config);
  await vm.start();
  let console = "";
  try {
    const deadline = Date.now() + 180_000;
    const settled = /ready on vsock port 1024 \(bridge pid \d+\)|vsock bridge .*(exited|could not start)|agent exited with status/;
    while (!settled.test(console) && Date.now() < deadline && vm.state === "running") {
      await new Promise((r) => setTimeout(r, 250));
      console = await readFile(vm.consoleLogPath, "utf8").catch(() => console);
    }
  } finally {
    await vm.stop();
  }
  console = console || vm.lastConsoleTail;
  assert.match(console, /kernel parameter asks for vsock, but no virtio vsock device is bound/, "the agent read the parameter and looked for the device");
  assert.match(console, /ready on vsock port 1024 \(bridge pid \d+\)/, "socat from the image runs in the guest and listens");
  assert.doesNotMatch(console, /ready on \/dev\/vport/, "the virtio-serial port is not served");
  assert.equal(await exists(config.stateDir), false);
});
