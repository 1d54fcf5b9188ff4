// `[runtime] hypervisor` picks the driver in one place (src/hypervisor/select.ts); each VMM's own
// section supplies its binary. Cloud Hypervisor and Firecracker are stand-in wrappers here (the
// driver runs their real `--version`); QEMU is the installed one.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config/index.js";
import { openHypervisor } from "../../src/hypervisor/select.js";
import { isKataError } from "../../src/util/errors.js";
import { standin } from "../harness/vmm-standin/fixture.js";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "kata-ts-vmmselect-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

void test("select: the configured VMM is the one opened, with its section's binary", async () => {
  const ch = await standin("cloud-hypervisor", dir, "ch");
  const fc = await standin("firecracker", dir, "fc");
  const sections = `[hypervisor.cloud-hypervisor]\npath = "${ch.binary}"\n[hypervisor.firecracker]\npath = "${fc.binary}"\n`;
  for (const name of ["qemu", "cloud-hypervisor", "firecracker"] as const) {
    const hv = await openHypervisor(parseConfig(`[runtime]\nhypervisor = "${name}"\n${sections}`, "t.toml"));
    assert.equal(hv.capabilities().name, name);
  }
  const fcCaps = (await openHypervisor(parseConfig(`[runtime]\nhypervisor = "firecracker"\n${sections}`, "t.toml"))).capabilities();
  assert.equal(fcCaps.sharedFs, undefined, "firecracker says it has no virtio-fs");
  assert.deepEqual(fcCaps.blockRootfs, { kind: "placeholder-drives", slots: 8 }, "but takes container root filesystems as block images (8 slots by default)");
  assert.deepEqual(fcCaps.accels, ["kvm"]);
  const three = await openHypervisor(parseConfig(`[runtime]\nhypervisor = "firecracker"\n${sections}block_slots = 3\n`, "t.toml"));
  assert.deepEqual(three.capabilities().blockRootfs, { kind: "placeholder-drives", slots: 3 }, "[hypervisor.firecracker] block_slots");
  assert.throws(() => parseConfig(`[hypervisor.firecracker]\nblock_slots = 17\n`, "t.toml"), /block_slots/);
});

void test("select: a configured VMM whose binary is missing fails with NOT_FOUND naming the config key", async () => {
  const cfg = parseConfig(`[runtime]\nhypervisor = "firecracker"\n[hypervisor.firecracker]\npath = "${join(dir, "none")}"\n`, "t.toml");
  await assert.rejects(openHypervisor(cfg), (e) => isKataError(e, "NOT_FOUND") && /\[hypervisor\.firecracker\] path/.test(e.message));
});
