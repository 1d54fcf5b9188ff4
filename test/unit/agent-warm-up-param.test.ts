// kata_ts.warm_up=containers: read from the kernel command line as any kernel parameter (the last
// occurrence wins); the warm-up container's spec is one crun runs from the guest's own image.
import { test } from "node:test";
import assert from "node:assert/strict";
import { WARM_UP_CONTAINERS, wantsContainerWarmUp } from "../../src/protocol/contract/guest.js";
import { WARM_UP_ID, warmUpSpec } from "../../src/agent/container/warm-up.js";

void test("warm-up parameter: asked only by kata_ts.warm_up=containers, the last one wins", () => {
  assert.equal(WARM_UP_CONTAINERS, "kata_ts.warm_up=containers");
  assert.equal(wantsContainerWarmUp("console=ttyS0 root=/dev/vda kata_ts.warm_up=containers quiet\n"), true);
  assert.equal(wantsContainerWarmUp("console=ttyS0 root=/dev/vda quiet\n"), false);
  assert.equal(wantsContainerWarmUp("kata_ts.warm_up=containers kata_ts.warm_up=none"), false);
  assert.equal(wantsContainerWarmUp("kata_ts.warm_up=containersx"), false);
});

void test("warm-up container: a plain name crun accepts, read-only rootfs, the image's own sleep", () => {
  assert.match(WARM_UP_ID, /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/);
  assert.doesNotMatch(WARM_UP_ID, /^[0-9a-f]{64}$/, "never a CRI container id");
  const spec = warmUpSpec();
  assert.equal(spec.root?.readonly, true);
  assert.deepEqual(spec.process?.args, ["sleep", "600"]);
  assert.deepEqual(spec.linux?.namespaces?.map((n) => n.type), ["pid", "ipc", "uts", "mount", "cgroup"]);
});
