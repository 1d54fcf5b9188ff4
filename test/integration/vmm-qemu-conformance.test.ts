// The shared VMM conformance suite against the real QEMU microvm and the real guest (TCG here):
// the same promises the Cloud Hypervisor and Firecracker drivers are held to with their stand-ins.
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { QemuHypervisor } from "../../src/hypervisor/qemu/index.js";
import type { GuestAssets } from "../../src/guest/assets.js";
import { vmmConformance } from "./vmm-conformance.js";
import { assets, cleanupRoot, processesMentioning, tempRoot, vmConfig } from "./vm-support.js";

let root: string;
let guest: GuestAssets;

before(async () => {
  guest = await assets();
  root = await tempRoot("vmm-qemu");
});

after(async () => {
  const leftovers = await processesMentioning(root);
  await cleanupRoot(root);
  assert.deepEqual(leftovers, [], "no QEMU process may outlive the tests");
});

vmmConformance({
  name: "qemu",
  hypervisor: () => QemuHypervisor.open(),
  config: (id) => vmConfig(guest, root, id),
  deadlineMs: 120_000,
});
