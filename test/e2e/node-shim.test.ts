// The node-level shim server (`[runtime] shim_server = "node"`) as a user meets it: pods through
// CRI on a private containerd, served by one keeper and one server process for the node instead
// of a shim process per pod. What must hold: the pods run and answer as with per-pod shims; the
// server's crash (SIGKILL) and its restart for an upgrade (SIGHUP to the keeper) end no pod:
// containers keep running, their output keeps reaching the CRI log, exec answers, containerd
// never sees a task exit; a containerd restart finds them again, also after the keeper's own
// death; removing the pods leaves nothing (the fixture's leak check), keeper and server included.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { useCriFixture } from "../harness/cri-fixture.js";
import { isAlive, processesMentioning } from "../harness/processes.js";
import { assertPodsLive, shimProcesses, startTickPod, waitFor, type TickPod } from "./node-shim-checks.js";

const fx = useCriFixture({ kataConfig: '[runtime]\nshim_server = "node"\n' });

void test("node-level shim server: pods survive its crash and its restart, and nothing is left", { timeout: 1_200_000 }, async (t) => {
  const { ctd, cri } = fx;
  assert.ok(ctd && cri);
  const pods: TickPod[] = [];
  let keeperPid: number | undefined;
  let step = "starting the pods";
  try {
    pods.push(await startTickPod(ctd, cri, "node-shim-a"));
    pods.push(await startTickPod(ctd, cri, "node-shim-b"));
    const first = await shimProcesses(ctd);
    assert.equal(first.keeper.length, 1, "one keeper for the node");
    assert.equal(first.server.length, 1, "one server for every pod");
    assert.deepEqual(first.perPod, [], "no shim process per pod");
    keeperPid = first.keeper[0] as number;
    const vms = (await processesMentioning(ctd.baseDir)).filter((p) => p.cmdline[0]?.includes("qemu-system"));
    assert.equal(vms.length, 2, "a VM per pod");
    await assertPodsLive(cri, pods, "before any restart");
    step = "after the server crashed";

    // The server crashes: the keeper starts another, which takes both running pods over.
    const crashed = first.server[0] as number;
    process.kill(crashed, "SIGKILL");
    const second = await waitFor("a new server", async () => {
      const s = (await shimProcesses(ctd)).server.filter((p) => p !== crashed);
      return s.length === 1 ? s[0] : undefined;
    }, 60_000);
    await assertPodsLive(cri, pods, "after the server was killed");
    const vmsAfter = (await processesMentioning(ctd.baseDir)).filter((p) => p.cmdline[0]?.includes("qemu-system")).map((p) => p.pid);
    assert.deepEqual(vmsAfter.sort(), vms.map((p) => p.pid).sort(), "the same VMs run on");

    step = "after the server restarted";
    // An upgrade: SIGHUP to the keeper restarts the server after it finished what it answered.
    process.kill(keeperPid, "SIGHUP");
    await waitFor("the restarted server", async () => {
      const s = (await shimProcesses(ctd)).server.filter((p) => p !== second);
      return s.length === 1 ? s[0] : undefined;
    }, 60_000);
    await assertPodsLive(cri, pods, "after the server was restarted");

    // containerd restarts (as a service restart does): it reconnects to each pod's socket, which
    // the keeper listens on, and finds its tasks running.
    step = "after containerd restarted";
    await ctd.restart();
    await assertPodsLive(cri, pods, "after containerd restarted");

    // The keeper itself dies: the server keeps its copies of the connections and listens on the
    // pods' sockets itself, so the pods run on and a containerd restart still reaches them.
    step = "after the keeper was killed";
    const killedKeeper = keeperPid;
    process.kill(killedKeeper, "SIGKILL");
    await waitFor("the keeper to be gone", async () => (isAlive(killedKeeper) ? undefined : true), 30_000);
    await assertPodsLive(cri, pods, "after the keeper was killed");
    step = "after containerd restarted with no keeper";
    await ctd.restart();
    await assertPodsLive(cri, pods, "after containerd restarted with no keeper");
  } catch (err) {
    // The keeper's and servers' log says what they saw (the harness removes it with the rest).
    t.diagnostic(`failed ${step}: ${String(err)}; ${join(ctd.kataStateDir, "kata-ts-shim.log")}:\n${await readFile(join(ctd.kataStateDir, "kata-ts-shim.log"), "utf8").catch(() => "(none)")}`);
    // Each pod's own lines (its bundle's log FIFO) are in containerd's log.
    const ctdLog = await readFile(ctd.logPath, "utf8").catch(() => "");
    t.diagnostic(`containerd's log, the shim's lines:\n${ctdLog.split("\n").filter((l) => (l.includes("kata-ts") || /level=(error|warning)/.test(l)) && !l.includes("level=debug")).slice(-80).join("\n")}`);
    throw err;
  } finally {
    // A failed removal must not hide why the test failed: it is reported, and the harness's
    // stop() and leak check still run.
    for (const pod of pods) {
      await cri.runtime.stopPodSandbox({ podSandboxId: pod.podSandboxId }).catch((e: unknown) => t.diagnostic(`stopping ${pod.name}: ${String(e)}`));
      await cri.runtime.removePodSandbox({ podSandboxId: pod.podSandboxId }).catch((e: unknown) => t.diagnostic(`removing ${pod.name}: ${String(e)}`));
    }
    if (keeperPid !== undefined && isAlive(keeperPid)) process.kill(keeperPid, "SIGTERM");
  }
  await waitFor("the keeper and its server to exit", async () => {
    const left = await shimProcesses(ctd);
    return left.keeper.length + left.server.length === 0 ? true : undefined;
  }, 60_000);
  const left = (await processesMentioning(ctd.baseDir)).filter((p) => /qemu-system|virtiofsd/.test(p.cmdline.join(" ")));
  assert.deepEqual(left.map((p) => p.cmdline[0]), [], "no VM or virtiofsd outlives its pod");
});
