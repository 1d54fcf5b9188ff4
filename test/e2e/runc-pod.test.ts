// The harness end to end with the trusted runtime: a private containerd driven over CRI exactly
// as kubelet would (no PullImage: the images were imported), one pod with handler `runc`.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { release } from "node:os";
import { join } from "node:path";
import { connectCri, type CriClient } from "../../src/cri/client.js";
import { ContainerState, PodSandboxState, podSandboxConfig, readCriLog, waitForContainerState } from "../../src/cri/pod.js";
import { assertNoLeaks, startContainerd, type PrivateContainerd } from "../harness/containerd.js";
import { BUSYBOX_IMAGE_REF, importTestImages } from "../harness/images.js";
import { mountsUnder } from "../harness/mounts.js";

let ctd: PrivateContainerd | undefined;
let cri: CriClient | undefined;

before(async () => {
  ctd = await startContainerd();
  await importTestImages(ctd);
  cri = connectCri(ctd.address);
});

after(async () => {
  cri?.close();
  await ctd?.stop();
  if (ctd) await assertNoLeaks(ctd);
});

void test("CRI reports the runtime ready and the imported images without a pull", { timeout: 60_000 }, async () => {
  assert.ok(cri);
  const v = await cri.runtime.version({ version: "v1" });
  assert.equal(v.runtimeName, "containerd");
  const status = await cri.runtime.status({});
  const conds = Object.fromEntries((status.status?.conditions ?? []).map((c) => [c.type, c.status]));
  assert.deepEqual(conds, { RuntimeReady: true, NetworkReady: true });
  const img = await cri.image.imageStatus({ image: { image: BUSYBOX_IMAGE_REF } });
  assert.ok(img.image?.repoTags.includes(BUSYBOX_IMAGE_REF), `image not known to CRI: ${JSON.stringify(img.image?.repoTags)}`);
});

void test("a runc pod runs a busybox container: log, exit code, exec, stop, remove", { timeout: 300_000 }, async () => {
  assert.ok(ctd && cri);
  const logDirectory = join(ctd.baseDir, "pods", "default_echo_uid1");
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name: "echo", uid: "uid1", logDirectory });
  const { podSandboxId } = await cri.runtime.runPodSandbox({ config, runtimeHandler: "runc" });
  const pod = await cri.runtime.podSandboxStatus({ podSandboxId });
  assert.equal(pod.status?.state, PodSandboxState.SANDBOX_READY);
  assert.equal(pod.status?.runtimeHandler, "runc");

  // A container that prints and exits with a chosen code.
  const { containerId: echoId } = await cri.runtime.createContainer({
    podSandboxId,
    sandboxConfig: config,
    config: {
      metadata: { name: "echo" },
      image: { image: BUSYBOX_IMAGE_REF },
      command: ["/bin/sh", "-c", "echo hello from runc; echo to stderr >&2; exit 3"],
      logPath: "echo/0.log",
    },
  });
  await cri.runtime.startContainer({ containerId: echoId });
  const exited = await waitForContainerState(cri, echoId, ContainerState.CONTAINER_EXITED, { timeoutMs: 60_000 });
  assert.equal(exited.exitCode, 3);
  assert.equal(await readCriLog(logDirectory, "echo/0.log", "stdout"), "hello from runc\n");
  assert.equal(await readCriLog(logDirectory, "echo/0.log", "stderr"), "to stderr\n");

  // A long-running container to exec into: runc shares the host kernel.
  const { containerId: sleeperId } = await cri.runtime.createContainer({
    podSandboxId,
    sandboxConfig: config,
    config: { metadata: { name: "sleeper" }, image: { image: BUSYBOX_IMAGE_REF }, command: ["sleep", "3600"], logPath: "sleeper/0.log" },
  });
  await cri.runtime.startContainer({ containerId: sleeperId });
  await waitForContainerState(cri, sleeperId, ContainerState.CONTAINER_RUNNING, { timeoutMs: 60_000 });
  const exec = await cri.runtime.execSync({ containerId: sleeperId, cmd: ["uname", "-r"], timeout: 30n });
  assert.equal(exec.exitCode, 0);
  assert.equal(Buffer.from(exec.stdout).toString().trim(), release());
  const failing = await cri.runtime.execSync({ containerId: sleeperId, cmd: ["sh", "-c", "exit 7"], timeout: 30n });
  assert.equal(failing.exitCode, 7);

  const listed = await cri.runtime.listContainers({ filter: { podSandboxId } });
  assert.deepEqual(listed.containers.map((c) => c.metadata?.name).sort(), ["echo", "sleeper"]);
  const stats = await cri.runtime.containerStats({ containerId: sleeperId });
  assert.ok((stats.stats?.memory?.workingSetBytes?.value ?? 0n) > 0n, "no memory stats for a running container");

  await cri.runtime.stopContainer({ containerId: sleeperId, timeout: 0n });
  const stopped = await waitForContainerState(cri, sleeperId, ContainerState.CONTAINER_EXITED, { timeoutMs: 30_000 });
  assert.equal(stopped.exitCode, 137); // SIGKILL: the grace period was 0
  for (const containerId of [echoId, sleeperId]) await cri.runtime.removeContainer({ containerId });
  await cri.runtime.stopPodSandbox({ podSandboxId });
  await cri.runtime.removePodSandbox({ podSandboxId });
  assert.equal((await cri.runtime.listPodSandbox({})).items.length, 0);
  // The CRI plugin itself released the pod: no rootfs, shm or netns mount is left for teardown.
  assert.deepEqual(await mountsUnder([ctd.baseDir]), []);
});
