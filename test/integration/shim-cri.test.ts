// The shim under containerd's CRI plugin (as kubelet drives it), with a pod made of host processes
// (shim-host-pod.ts): checks the CRI side of the shim contract - one shim per pod (app containers
// join the sandbox's), the sandbox task, Wait before Start, exit codes, logs through the FIFOs,
// ExecSync - independently of VMs. test/e2e/kata-pod.test.ts runs the same flow with real VMs.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { release } from "node:os";
import { connectCri, type CriClient } from "../../src/cri/client.js";
import { assertNoLeaks, startContainerd, type PrivateContainerd } from "../harness/containerd.js";
import { importTestImages } from "../harness/images.js";
import { runKataPodFlow } from "../e2e/kata-pod-flow.js";

let ctd: PrivateContainerd | undefined;
let cri: CriClient | undefined;

before(async () => {
  // The harness installs the kata-ts handler with the node installer's code (shim linked on PATH).
  ctd = await startContainerd({ env: { KATA_TS_SHIM_POD_FACTORY: join(import.meta.dirname, "shim-host-pod.js") } });
  await importTestImages(ctd);
  cri = connectCri(ctd.address);
});

after(async () => {
  cri?.close();
  await ctd?.stop();
  if (ctd) await assertNoLeaks(ctd);
});

void test("shim via CRI: a pod's life cycle through the kata-ts handler (host-process pod)", { timeout: 300_000 }, async () => {
  assert.ok(ctd && cri);
  const { podKernel } = await runKataPodFlow(ctd, cri, "hostpod");
  assert.equal(podKernel, release(), "a host-process pod shares the host kernel");
});
