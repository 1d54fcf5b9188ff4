// reattachTarget (src/sandbox/reattach.ts): which state records a process may take a pod over
// from, and the errors that name the pod and what is missing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { reattachTarget } from "../../src/sandbox/reattach.js";
import type { SandboxRecord } from "../../src/sandbox/state-file.js";
import { isKataError, type KataErrorCode } from "../../src/util/errors.js";

function record(over: Partial<SandboxRecord> = {}): SandboxRecord {
  return {
    id: "pod1",
    status: "ready",
    createdAt: "2026-12-02T00:00:00.000Z",
    vmPid: 4242,
    virtiofsdPid: 4243,
    agentSocketPath: "/run/kata-ts/pod1/vm/agent.sock",
    vmm: "qemu",
    vmStateDir: "/run/kata-ts/pod1/vm",
    accel: "tcg",
    sharedDir: "/run/kata-ts/pod1/shared",
    containers: { c1: { status: "running", hostRootfs: "/b/rootfs", terminal: false, pid: 7 } },
    ...over,
  };
}

function rejects(fn: () => unknown, code: KataErrorCode, text: RegExp): void {
  assert.throws(fn, (err: unknown) => isKataError(err, code) && text.test(err.message));
}

void test("a ready QEMU pod's record gives the VM's pid, dir, accelerator and virtiofsd", () => {
  assert.deepEqual(reattachTarget("pod1", record(), ["c1"]), { vmPid: 4242, vmStateDir: "/run/kata-ts/pod1/vm", accel: "tcg", virtiofsdPid: 4243 });
  const { virtiofsdPid: _v, ...noVfs } = record();
  assert.deepEqual(reattachTarget("pod1", noVfs, []), { vmPid: 4242, vmStateDir: "/run/kata-ts/pod1/vm", accel: "tcg" });
});

void test("a record of an older kata-ts (no vmm) is taken as QEMU's; one lacking the VM's fields is refused by name", () => {
  const { vmm: _m, ...old } = record();
  assert.equal(reattachTarget("pod1", old, []).vmPid, 4242);
  const { vmStateDir: _d, accel: _a, ...lacking } = record();
  rejects(() => reattachTarget("pod1", lacking, []), "FAILED_PRECONDITION", /^pod pod1 cannot be reattached: its state record lacks vmStateDir, accel/);
});

void test("a pod not ready, of another VMM or another id is refused; an unknown container is NOT_FOUND", () => {
  rejects(() => reattachTarget("pod1", record({ status: "stopping" }), []), "FAILED_PRECONDITION", /pod pod1 .*its sandbox is stopping, not ready/);
  rejects(() => reattachTarget("pod1", record({ status: "creating" }), []), "FAILED_PRECONDITION", /creating/);
  rejects(() => reattachTarget("pod1", record({ vmm: "firecracker" }), []), "FAILED_PRECONDITION", /its VMM is firecracker; only a QEMU VM/);
  rejects(() => reattachTarget("pod1", record({ id: "pod2" }), []), "FAILED_PRECONDITION", /names sandbox "pod2"/);
  rejects(() => reattachTarget("pod1", record(), ["c1", "c9"]), "NOT_FOUND", /pod pod1 has no container c9/);
});
