// kata-ts end to end: a private containerd with the kata-ts handler installed by the node
// installer's code, driven over CRI exactly as kubelet would. The pod runs in its own VM: its
// containers see the guest kernel, not the host's. Teardown proves no shim, QEMU, virtiofsd,
// mount, socket or state directory is left.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { release } from "node:os";
import { connectCri, type CriClient } from "../../src/cri/client.js";
import { loadGuestAssets } from "../../src/guest/assets.js";
import { assertNoLeaks, startContainerd, type PrivateContainerd } from "../harness/containerd.js";
import { importTestImages } from "../harness/images.js";
import { installHandler, runKataPodFlow, shimOnPath } from "./kata-pod-flow.js";

let ctd: PrivateContainerd | undefined;
let cri: CriClient | undefined;

before(async () => {
  ctd = await startContainerd({ beforeStart: installHandler(), env: shimOnPath() });
  await importTestImages(ctd);
  cri = connectCri(ctd.address);
});

after(async () => {
  cri?.close();
  await ctd?.stop();
  if (ctd) await assertNoLeaks(ctd);
});

void test("kata-ts pod: busybox runs in its own VM (logs, exit codes, exec, stop, remove)", { timeout: 900_000 }, async () => {
  assert.ok(ctd && cri);
  const assets = await loadGuestAssets();
  const { podKernel } = await runKataPodFlow(ctd, cri, "vmpod");
  assert.notEqual(podKernel, release(), "the pod must not share the host kernel");
  assert.equal(podKernel, assets.kernelRelease, "the pod runs the guest assets' kernel");
});
