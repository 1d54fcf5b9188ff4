// The shim under containerd's CRI plugin (as kubelet drives it): the test entry with a pod made of
// host processes (test/harness/host-pod-shim.ts) behind the `kata-ts` handler. Checks the CRI side
// of the shim contract - one shim per pod (app containers join the sandbox's), the sandbox task,
// Wait before Start, exit codes, logs through the FIFOs, ExecSync - independently of VMs.
// test/e2e/kata-pod.test.ts runs the same flow with real VMs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { release } from "node:os";
import { useCriFixture } from "../harness/cri-fixture.js";
import { hostPodContainerd } from "../harness/host-pod-runtime.js";
import { runKataPodFlow } from "../e2e/kata-pod-flow.js";

const fx = useCriFixture(hostPodContainerd());

void test("shim via CRI: a pod's life cycle through the kata-ts handler (host-process pod)", { timeout: 300_000 }, async () => {
  assert.ok(fx.ctd && fx.cri);
  const { podKernel } = await runKataPodFlow(fx.ctd, fx.cri, "hostpod");
  assert.equal(podKernel, release(), "a host-process pod shares the host kernel");
});
