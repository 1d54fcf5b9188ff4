// The node-level shim server (the default) with the VM pool on (also the default): a pod it
// serves takes the pool's ready VM, as with a shim per pod, and that adopted VM is taken over
// like any other when the server crashes or restarts: the pod's container runs on, its output
// reaches the CRI log, exec answers from its guest, and stopping it reaches containerd (no
// containerd restart in between). Removing the pods leaves nothing of theirs; the pool's own
// processes go when it is stopped (before the fixture's leak check).
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { ContainerState, waitForContainerState } from "../../src/cri/pod.js";
import { stopPool } from "../../src/pool/stop.js";
import { useCriFixture } from "../harness/cri-fixture.js";
import { processesMentioning } from "../harness/processes.js";
import { assertPodsLive, shimProcesses, startTickPod, waitFor, type TickPod } from "./node-shim-checks.js";
import { poolPathsOf, sandboxRecord, waitPooled } from "./pool-fixture.js";

// Registered before the fixture's: the pool goes before containerd stops and the leak check runs.
after(async () => {
  if (fx.ctd) await stopPool(poolPathsOf(fx.ctd));
});

const fx = useCriFixture({ pool: true, kataConfig: '[runtime]\nshim_server = "node"\n' });

void test("node-level shim server, pool on: a pod adopts the pool's VM, survives the server's crash and restart, and stops as asked after them", { timeout: 1_200_000 }, async (t) => {
  const { ctd, cri } = fx;
  assert.ok(ctd && cri);
  const pods: TickPod[] = [];
  try {
    // The first pod's start brings the pool up; the second takes the VM it readies.
    pods.push(await startTickPod(ctd, cri, "node-pool-a"));
    const pooled = await waitPooled(poolPathsOf(ctd), 1);
    const pod = await startTickPod(ctd, cri, "node-pool-b");
    pods.push(pod);
    const vmPid = (await sandboxRecord(ctd, pod.podSandboxId)).vmPid;
    assert.ok(vmPid !== undefined && [...pooled.values()].includes(vmPid), `pod B runs in the VM the pool readied (${vmPid} of ${[...pooled.values()].join(", ")})`);
    const first = await shimProcesses(ctd);
    assert.equal(first.server.length, 1, "one server for both pods");
    assert.deepEqual(first.perPod, [], "no shim process per pod, and no warm one of the pool's");
    await assertPodsLive(cri, pods, "before the crash");

    const crashed = first.server[0] as number;
    process.kill(crashed, "SIGKILL");
    await waitFor("a new server", async () => ((await shimProcesses(ctd)).server.some((p) => p !== crashed) ? true : undefined), 60_000);
    await assertPodsLive(cri, pods, "after the server was killed");
    assert.equal((await sandboxRecord(ctd, pod.podSandboxId)).vmPid, vmPid, "the adopted VM runs on");

    // An upgrade: SIGHUP to the keeper; the drained server hands its calls over too.
    const second = (await shimProcesses(ctd)).server[0] as number;
    process.kill(first.keeper[0] as number, "SIGHUP");
    await waitFor("the restarted server", async () => ((await shimProcesses(ctd)).server.some((p) => p !== second) ? true : undefined), 60_000);
    await assertPodsLive(cri, pods, "after the server was restarted");

    // containerd's CRI learns a container's exit only from the answer to its task Wait, which the
    // killed and the drained server were answering: the server after them answers it.
    for (const p of pods) {
      await cri.runtime.stopContainer({ containerId: p.containerId, timeout: 0n }, { timeoutMs: 60_000 });
      const stopped = await waitForContainerState(cri, p.containerId, ContainerState.CONTAINER_EXITED, { timeoutMs: 60_000 });
      assert.equal(stopped.exitCode, 137, `${p.name}'s container, stopped, exited as killed`);
    }
  } catch (err) {
    t.diagnostic(`${join(ctd.kataStateDir, "kata-ts-shim.log")}:\n${await readFile(join(ctd.kataStateDir, "kata-ts-shim.log"), "utf8").catch(() => "(none)")}`);
    throw err;
  } finally {
    for (const p of pods) {
      await cri.runtime.stopPodSandbox({ podSandboxId: p.podSandboxId }).catch((e: unknown) => t.diagnostic(`stopping ${p.name}: ${String(e)}`));
      await cri.runtime.removePodSandbox({ podSandboxId: p.podSandboxId }).catch((e: unknown) => t.diagnostic(`removing ${p.name}: ${String(e)}`));
    }
  }
  // With no pod left the keeper and its server exit (the harness's idle time is 1 s).
  await waitFor("the keeper and its server to exit", async () => {
    const left = await shimProcesses(ctd);
    return left.keeper.length + left.server.length === 0 ? true : undefined;
  }, 60_000);
  const ids = pods.map((p) => p.podSandboxId);
  const left = (await processesMentioning(ctd.baseDir)).filter((p) => ids.some((id) => p.cmdline.some((a) => a.includes(id))));
  assert.deepEqual(left.map((p) => p.cmdline.join(" ")), [], "no process of the removed pods (VM, virtiofsd) is left");
});
