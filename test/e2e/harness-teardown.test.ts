// The harness cleans up after a test that gave up half-way: a running runc pod (shim, pause and
// app processes, overlay and shm mounts, a netns, CNI state) is torn down by stop() alone. A dead
// shim socket of its own in /run/containerd/s is reported and removed, another containerd's is
// not touched. And a caller's own netns is used as given and left in place.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { access, mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { connectCri } from "../../src/cri/client.js";
import { ContainerState, podSandboxConfig, waitForContainerState } from "../../src/cri/pod.js";
import { assertNoLeaks, findLeaks, shimSocketPath, startContainerd } from "../harness/containerd.js";
import { BUSYBOX_IMAGE_REF, importTestImages } from "../harness/images.js";
import { mountsUnder } from "../harness/mounts.js";
import { createNetns, deleteNetns } from "../harness/netns.js";
import { SHIM_SOCKET_DIR } from "../harness/shim-sockets.js";

/** A unix socket file nothing listens on: what a shim that died without closing leaves. */
function deadSocket(path: string): void {
  execFileSync(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(path)}, () => process.exit(0))`]);
}

void test("stop() tears down a pod that was left running, leaving nothing behind", { timeout: 180_000 }, async () => {
  const ctd = await startContainerd({ kataTs: false });
  const ids: string[] = [];
  try {
    await importTestImages(ctd);
    const cri = connectCri(ctd.address);
    try {
      const logDirectory = join(ctd.baseDir, "pods", "default_left_uid");
      await mkdir(logDirectory, { recursive: true });
      const config = podSandboxConfig({ name: "left", logDirectory });
      const { podSandboxId } = await cri.runtime.runPodSandbox({ config, runtimeHandler: "runc" });
      const { containerId } = await cri.runtime.createContainer({
        podSandboxId,
        sandboxConfig: config,
        config: { metadata: { name: "sleeper" }, image: { image: BUSYBOX_IMAGE_REF }, command: ["sleep", "3600"], logPath: "s.log" },
      });
      ids.push(podSandboxId, containerId);
      await cri.runtime.startContainer({ containerId });
      await waitForContainerState(cri, containerId, ContainerState.CONTAINER_RUNNING, { timeoutMs: 60_000 });
      // The running pod is visible to the leak check (it is what would leak without teardown).
      assert.ok((await mountsUnder([ctd.baseDir])).length > 0);
    } finally {
      cri.close();
    }
  } finally {
    await ctd.stop();
  }
  // Including the pod's and the container's cgroups, and any process running on their rootfs.
  assert.deepEqual(await findLeaks({ ...ctd, seenContainerIds: ids }), []);
});

void test("a dead shim socket of this instance is a leak and is removed; another instance's is not touched", { timeout: 180_000 }, async () => {
  const ctd = await startContainerd({ kataTs: false });
  const foreign = join(SHIM_SOCKET_DIR, randomBytes(32).toString("hex"));
  let own = "";
  try {
    await importTestImages(ctd);
    const cri = connectCri(ctd.address);
    try {
      const logDirectory = join(ctd.baseDir, "pods", "default_sock_uid");
      await mkdir(logDirectory, { recursive: true });
      const { podSandboxId } = await cri.runtime.runPodSandbox({ config: podSandboxConfig({ name: "sock", logDirectory }), runtimeHandler: "runc" });
      own = shimSocketPath(ctd.address, podSandboxId);
      await access(own); // the runc shim's, while the pod runs
      await cri.runtime.stopPodSandbox({ podSandboxId });
      await cri.runtime.removePodSandbox({ podSandboxId });
    } finally {
      cri.close();
    }
    // As if the pod's shim had died without removing its socket; and one of another containerd.
    await rm(own, { force: true });
    deadSocket(own);
    deadSocket(foreign);
  } finally {
    await ctd.stop();
  }
  try {
    const leaks = await findLeaks(ctd);
    assert.deepEqual(leaks, [`shim socket ${own} (nothing served it once the pods were removed)`]);
    await assert.rejects(access(own), "stop() removed its instance's dead socket");
    await access(foreign); // another instance's: not this harness's to judge or remove
  } finally {
    await rm(foreign, { force: true });
  }
});

void test("a caller's netns is used for containerd and survives stop()", { timeout: 60_000 }, async () => {
  const name = `ktsh-caller-${process.pid}`;
  const netns = await createNetns(name);
  try {
    const ctd = await startContainerd({ netns, kataTs: false });
    assert.equal(ctd.netnsPath, netns);
    await ctd.stop();
    await assertNoLeaks({ ...ctd, before: { ...ctd.before, netns: new Set([...ctd.before.netns, name]) } });
    await access(netns); // still there: the caller owns it
  } finally {
    await deleteNetns(name);
  }
});
