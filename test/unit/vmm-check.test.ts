// `kata-ts check`'s lines for Cloud Hypervisor and Firecracker: binary found or not, its version,
// and why it cannot run on a host without usable KVM. The "found" case runs the stand-in VMM's
// real --version through a wrapper script, as check runs the real binary.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { vmmCapabilities } from "../../src/host/vmm-capabilities.js";
import type { Capability } from "../../src/host/capabilities.js";
import { standin } from "../harness/vmm-standin/fixture.js";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "kata-ts-vmmcheck-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const kvm = (status: Capability["status"]): Capability => ({ name: "kvm", status, detail: "", required: false });

void test("check: a VMM binary that is present reports its version and, without usable KVM, why it cannot run here", async () => {
  const ch = await standin("cloud-hypervisor", dir, "ch");
  const fc = await standin("firecracker", dir, "fc");
  const [chCap, fcCap] = await vmmCapabilities(kvm("unusable"), { cloudHypervisor: ch.binary, firecracker: fc.binary });
  assert.equal(chCap?.name, "cloud-hypervisor");
  assert.equal(chCap?.status, "unusable");
  assert.match(chCap?.detail ?? "", /^cloud-hypervisor 38\.0 .*cannot run here: it needs KVM and this host has no usable KVM/);
  assert.equal(fcCap?.status, "unusable");
  assert.match(fcCap?.detail ?? "", /^firecracker 1\.7\.0 /);
  const [withKvm] = await vmmCapabilities(kvm("ok"), { cloudHypervisor: ch.binary, firecracker: fc.binary });
  assert.equal(withKvm?.status, "ok");
  assert.equal(chCap?.required, false, "optional: QEMU is the default VMM");
});

void test("check: a missing VMM binary is 'absent' with how to get one", async () => {
  const caps = await vmmCapabilities(kvm("unusable"), { cloudHypervisor: join(dir, "nope-ch"), firecracker: join(dir, "nope-fc") });
  assert.deepEqual(caps.map((c) => c.status), ["absent", "absent"]);
  assert.match(caps[0]?.detail ?? "", /not found \(Debian 12 does not package cloud-hypervisor/);
  assert.match(caps[1]?.detail ?? "", /\[hypervisor\.firecracker\] path\); it could not run here anyway: it needs KVM/);
});
