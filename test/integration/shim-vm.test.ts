// The shim with real VMs under a real containerd, through `ctr` (no CRI): a plain container owns
// its pod, so `ctr run` boots a VM, runs the command in it and tears everything down on --rm.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { release } from "node:os";
import { assertNoLeaks, startContainerd, type PrivateContainerd } from "../harness/containerd.js";
import { BUSYBOX_IMAGE_REF, importTestImages } from "../harness/images.js";
import { isKataError } from "../../src/util/errors.js";

const runtime = "io.containerd.kata-ts.v2";
let ctd: PrivateContainerd | undefined;

before(async () => {
  ctd = await startContainerd(); // the kata-ts shim is linked onto containerd's PATH by the installer
  await importTestImages(ctd);
});

after(async () => {
  if (ctd === undefined) return;
  await ctd.stop();
  await assertNoLeaks(ctd);
});

void test("shim VM via ctr: run --rm echo hi prints hi from a VM, with the guest kernel", { timeout: 600_000 }, async () => {
  assert.ok(ctd);
  const hi = await ctd.ctr(["run", "--runtime", runtime, "--rm", BUSYBOX_IMAGE_REF, "vm-echo", "echo", "hi"], { timeoutMs: 300_000 });
  assert.equal(hi.stdout, "hi\n");
  const uname = await ctd.ctr(["run", "--runtime", runtime, "--rm", BUSYBOX_IMAGE_REF, "vm-uname", "uname", "-r"], { timeoutMs: 300_000 });
  assert.notEqual(uname.stdout.trim(), release());
  const failed = await ctd
    .ctr(["run", "--runtime", runtime, "--rm", BUSYBOX_IMAGE_REF, "vm-exit", "sh", "-c", "exit 5"], { timeoutMs: 300_000 })
    .then(() => 0, (err: unknown) => (isKataError(err) ? ((err.cause as { code?: number }).code ?? -1) : -1));
  assert.equal(failed, 5);
  const left = await ctd.ctr(["containers", "ls", "-q"]);
  assert.equal(left.stdout.trim(), "", "--rm removed every container");
});
