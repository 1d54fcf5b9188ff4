// The harness end to end with the trusted runtime: a private containerd driven over CRI exactly
// as kubelet would (no PullImage: the images were imported), one pod with handler `runc`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { release } from "node:os";
import { join } from "node:path";
import { ContainerState, PodSandboxState, podSandboxConfig, waitForContainerState } from "../../src/cri/pod.js";
import { useCriFixture } from "../harness/cri-fixture.js";
import { runEchoThenSleeper } from "../harness/echo-sleeper.js";
import { BUSYBOX_IMAGE_REF } from "../harness/images.js";
import { mountsUnder } from "../harness/mounts.js";

const fx = useCriFixture();

void test("CRI reports the runtime ready and the imported images without a pull", { timeout: 60_000 }, async () => {
  assert.ok(fx.cri);
  const v = await fx.cri.runtime.version({ version: "v1" });
  assert.equal(v.runtimeName, "containerd");
  const status = await fx.cri.runtime.status({});
  const conds = Object.fromEntries((status.status?.conditions ?? []).map((c) => [c.type, c.status]));
  assert.deepEqual(conds, { RuntimeReady: true, NetworkReady: true });
  const img = await fx.cri.image.imageStatus({ image: { image: BUSYBOX_IMAGE_REF } });
  assert.ok(img.image?.repoTags.includes(BUSYBOX_IMAGE_REF), `image not known to CRI: ${JSON.stringify(img.image?.repoTags)}`);
});

void test("a runc pod runs a busybox container: log, exit code, exec, stop, remove", { timeout: 300_000 }, async () => {
  assert.ok(fx.ctd && fx.cri);
  const logDirectory = join(fx.ctd.baseDir, "pods", "default_echo_uid1");
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name: "echo", uid: "uid1", logDirectory });
  const { podSandboxId } = await fx.cri.runtime.runPodSandbox({ config, runtimeHandler: "runc" });
  const pod = await fx.cri.runtime.podSandboxStatus({ podSandboxId });
  assert.equal(pod.status?.state, PodSandboxState.SANDBOX_READY);
  assert.equal(pod.status?.runtimeHandler, "runc");

  // A container that prints and exits with a chosen code, then a long-running one to exec into:
  // runc shares the host kernel.
  const { echoId, sleeperId } = await runEchoThenSleeper(fx.cri, { podSandboxId, config, logDirectory }, "runc", 60_000);
  const exec = await fx.cri.runtime.execSync({ containerId: sleeperId, cmd: ["uname", "-r"], timeout: 30n });
  assert.equal(exec.exitCode, 0);
  assert.equal(Buffer.from(exec.stdout).toString().trim(), release());
  const failing = await fx.cri.runtime.execSync({ containerId: sleeperId, cmd: ["sh", "-c", "exit 7"], timeout: 30n });
  assert.equal(failing.exitCode, 7);

  const listed = await fx.cri.runtime.listContainers({ filter: { podSandboxId } });
  assert.deepEqual(listed.containers.map((c) => c.metadata?.name).sort(), ["echo", "sleeper"]);
  const stats = await fx.cri.runtime.containerStats({ containerId: sleeperId });
  assert.ok((stats.stats?.memory?.workingSetBytes?.value ?? 0n) > 0n, "no memory stats for a running container");

  await fx.cri.runtime.stopContainer({ containerId: sleeperId, timeout: 0n });
  const stopped = await waitForContainerState(fx.cri, sleeperId, ContainerState.CONTAINER_EXITED, { timeoutMs: 30_000 });
  assert.equal(stopped.exitCode, 137); // SIGKILL: the grace period was 0
  for (const containerId of [echoId, sleeperId]) await fx.cri.runtime.removeContainer({ containerId });
  await fx.cri.runtime.stopPodSandbox({ podSandboxId });
  await fx.cri.runtime.removePodSandbox({ podSandboxId });
  assert.equal((await fx.cri.runtime.listPodSandbox({})).items.length, 0);
  // The CRI plugin itself released the pod: no rootfs, shm or netns mount is left for teardown.
  assert.deepEqual(await mountsUnder([fx.ctd.baseDir]), []);
});
