// Density as a user meets it: 20 idle kata-ts pods at once through CRI, each in its own VM. All
// reach RUNNING, ExecSync answers in every one of them (each from its own guest: the hostname is
// the pod's), then every pod is removed and the harness's leak check proves that no shim, QEMU,
// virtiofsd, mount, netns, tap, cgroup or state dir is left. Memory figures live in
// bench/density.ts; this test asserts behaviour only.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ContainerState, waitForContainerState } from "../../src/cri/pod.js";
import type { CriClient } from "../../src/cri/client.js";
import type { PrivateContainerd } from "../harness/containerd.js";
import { useCriFixture } from "../harness/cri-fixture.js";
import { startOneContainerPod, type OneContainerPod } from "./one-container-pod.js";
import { processesMentioning } from "../harness/processes.js";
import { waitUntilEmpty } from "./pod-leftovers.js";

const PODS = Number(process.env.KATA_TS_DENSITY_PODS ?? 20);
/** Pods booting at once: boots are CPU-bound under TCG, so more than the cores only queues. */
const START_CONCURRENCY = 2;

const fx = useCriFixture();

const startIdlePod = (ctd: PrivateContainerd, cri: CriClient, name: string): Promise<OneContainerPod> => startOneContainerPod(ctd, cri, name, { name: "idle", command: ["sleep", "86400"] });

/** Runs `work` over `items`, at most `limit` at a time; rejects with the first failure. */
async function inBatches<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += limit) out.push(...(await Promise.all(items.slice(i, i + limit).map(work))));
  return out;
}

void test(`density: ${PODS} idle kata-ts pods run at once, each answers ExecSync, all are removed without a trace`, { timeout: 1_800_000 }, async () => {
  const { ctd, cri } = fx;
  assert.ok(ctd && cri);
  const pods: OneContainerPod[] = [];
  try {
    const names = Array.from({ length: PODS }, (_, i) => `dense-${i}`);
    pods.push(...(await inBatches(names, START_CONCURRENCY, (n) => startIdlePod(ctd, cri, n))));

    const vms = (await processesMentioning(ctd.baseDir)).filter((p) => p.cmdline[0]?.includes("qemu-system"));
    assert.equal(vms.length, PODS, "one VM per pod, all running at once");

    for (const pod of pods) {
      // Still RUNNING now that every pod is up: none was starved or killed by the others.
      await waitForContainerState(cri, pod.containerId, ContainerState.CONTAINER_RUNNING, { timeoutMs: 5_000 });
      const r: Awaited<ReturnType<CriClient["runtime"]["execSync"]>> = await cri.runtime.execSync({ containerId: pod.containerId, cmd: ["hostname"], timeout: 120n });
      assert.equal(r.exitCode, 0, `${pod.name}: exec failed: ${Buffer.from(r.stderr).toString()}`);
      assert.equal(Buffer.from(r.stdout).toString().trim(), pod.name, "the exec ran in that pod's own guest");
    }
  } finally {
    for (const pod of pods) {
      await cri.runtime.stopPodSandbox({ podSandboxId: pod.podSandboxId });
      await cri.runtime.removePodSandbox({ podSandboxId: pod.podSandboxId });
    }
  }
  // The node-level shim server's keeper and server leave a moment after the last pod (their idle time).
  const left = async () => (await processesMentioning(ctd.baseDir)).filter((p) => /qemu-system|virtiofsd|shim-kata/.test(p.cmdline.join(" "))).map((p) => `${p.pid}: ${p.cmdline.join(" ")}`);
  await waitUntilEmpty("a VM, virtiofsd or shim process of the removed pods", left, 30_000);
});
