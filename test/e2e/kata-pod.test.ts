// kata-ts end to end: a private containerd with the kata-ts handler installed by the node
// installer's code, driven over CRI exactly as kubelet would. The pod runs in its own VM: its
// containers see the guest kernel, not the host's. Teardown proves no shim, QEMU, virtiofsd,
// mount, socket or state directory is left.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { access, mkdir, readFile, readdir } from "node:fs/promises";
import { release } from "node:os";
import { join } from "node:path";
import { connectCri, type CriClient } from "../../src/cri/client.js";
import { loadGuestAssets } from "../../src/guest/assets.js";
import { assertNoLeaks, startContainerd, type PrivateContainerd } from "../harness/containerd.js";
import { ContainerState, PodSandboxState, podSandboxConfig, waitForContainerState } from "../../src/cri/pod.js";
import { BUSYBOX_IMAGE_REF, importTestImages } from "../harness/images.js";
import { isNodeShimCmdline } from "../../src/shim/bundle-path.js";
import { NODE_SHIM_CGROUP } from "../../src/shim/node-server/keeper.js";
import { processesMentioning } from "../harness/processes.js";
import { cgroupDirsOf, cgroupHierarchies } from "../../src/sandbox/host-cgroup.js";
import { loadOverheadData, podFixedOverhead } from "../../src/deploy/manifests/overhead.js";
import { createPodCgroup } from "../harness/pod-cgroup.js";
import { HANDLER, runKataPodFlow } from "./kata-pod-flow.js";

const kataConfig = "[hypervisor.qemu]\ndefault_vcpus = 2\ndefault_memory = 640\n";
let ctd: PrivateContainerd | undefined;

/** The QEMU command lines of this harness's VMs. */
async function qemuCmdlines(marker: string): Promise<string[][]> {
  const out: string[][] = [];
  for (const pid of (await readdir("/proc")).filter((p) => /^\d+$/.test(p))) {
    const cmd = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    const argv = cmd.split("\0");
    if (argv[0]?.includes("qemu-system") && cmd.includes(marker)) out.push(argv);
  }
  return out;
}
let cri: CriClient | undefined;

before(async () => {
  // The handler's ConfigPath names this file; the VM size below proves the shim read it.
  ctd = await startContainerd({ kataConfig });
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
  const base = ctd.baseDir;
  const { podKernel, podCpus } = await runKataPodFlow(ctd, cri, "vmpod", async () => {
    const vms = await qemuCmdlines(base);
    assert.equal(vms.length, 1, "one VM for the pod");
    const argv = vms[0] as string[];
    assert.equal(argv[argv.indexOf("-smp") + 1], "2", "default_vcpus from the handler's ConfigPath");
    assert.match(argv[argv.indexOf("-m") + 1] ?? "", /^640M?(,|$)/, "default_memory from the handler's ConfigPath (then, with a virtio-pmem root, the device memory slots)");
  });
  assert.notEqual(podKernel, release(), "the pod must not share the host kernel");
  assert.equal(podKernel, assets.kernelRelease, "the pod runs the guest assets' kernel");
  // The guest brings up both vCPUs (without ACPI the project's kernel reads them from the MP table).
  assert.equal(podCpus, 2, "the pod sees its 2 vCPUs");
});

// What "not OOM-killed for VM memory" means: a container over its own memory limit is killed as
// runc kills it (CRI: EXITED 137, reason OOMKilled), by the guest's OOM killer; the host charges
// the whole VM (shim, QEMU, virtiofsd) to kubelet's pod cgroup, limited to the containers' limits +
// the RuntimeClass's overhead.podFixed, and must kill none of it: the pod stays ready, its other
// container keeps running and answers exec, no host OOM kill is counted in the pod's cgroups.
for (const handler of ["runc", HANDLER]) {
  void test(`${handler} pod under a pod cgroup of limits + podFixed: a container over its memory limit is OOMKilled, the pod and its other container live on`, { timeout: 600_000 }, async (t) => {
    assert.ok(ctd && cri);
    const MiB = 1024 * 1024;
    const hogMiB = 32;
    const sleeperMiB = 16;
    const podFixedMiB = Number.parseInt(podFixedOverhead(loadOverheadData()).memory, 10);
    const podCg = await createPodCgroup((hogMiB + sleeperMiB + podFixedMiB) * MiB);
    const name = `oom-${handler}`;
    const logDirectory = join(ctd.baseDir, "pods", `default_${name}_uid-${name}`);
    await mkdir(logDirectory, { recursive: true });
    const config = podSandboxConfig({ name, uid: `uid-${name}`, logDirectory, cgroupParent: podCg.parent, resources: { memoryLimitInBytes: BigInt((hogMiB + sleeperMiB) * MiB) } });
    const start = async (podSandboxId: string, cname: string, command: string[], limitMiB: number) => {
      const { containerId } = await (cri as CriClient).runtime.createContainer({
        podSandboxId,
        sandboxConfig: config,
        config: { metadata: { name: cname }, image: { image: BUSYBOX_IMAGE_REF }, command, logPath: `${cname}/0.log`, linux: { resources: { memoryLimitInBytes: BigInt(limitMiB * MiB) } } },
      });
      await (cri as CriClient).runtime.startContainer({ containerId });
      return containerId;
    };
    try {
      const { podSandboxId } = await cri.runtime.runPodSandbox({ config, runtimeHandler: handler });
      try {
        const vmPids = handler === HANDLER ? (await processesMentioning(podSandboxId)).map((p) => p.pid) : [];
        if (handler === HANDLER) assert.ok(vmPids.length >= 3, `the pod's shim, QEMU and virtiofsd found: ${vmPids.join(", ")}`);
        const sleeperId = await start(podSandboxId, "sleeper", ["sleep", "3600"], sleeperMiB);
        await waitForContainerState(cri, sleeperId, ContainerState.CONTAINER_RUNNING, { timeoutMs: 120_000 });
        // tail keeps the current line in memory, and /dev/zero has no newline.
        const hogId = await start(podSandboxId, "hog", ["tail", "/dev/zero"], hogMiB);
        const status = await waitForContainerState(cri, hogId, ContainerState.CONTAINER_EXITED, { timeoutMs: 120_000 });
        assert.equal(status.exitCode, 137);
        assert.equal(status.reason, "OOMKilled", handler === HANDLER ? "the shim's /tasks/oom event reached the CRI plugin" : "runc's OOM event");
        const pod = await cri.runtime.podSandboxStatus({ podSandboxId });
        assert.equal(pod.status?.state, PodSandboxState.SANDBOX_READY, "the pod is still ready");
        const sleeper = await cri.runtime.containerStatus({ containerId: sleeperId });
        assert.equal(sleeper.status?.state, ContainerState.CONTAINER_RUNNING, "the other container still runs");
        // The exec also writes 8 MiB to the pod's /dev/shm: a 64 MiB tmpfs as on runc, but in the
        // guest (the container's memory, within its limit), not the host's tmpfs.
        const r = await cri.runtime.execSync({ containerId: sleeperId, cmd: ["sh", "-c", "dd if=/dev/zero of=/dev/shm/f bs=1M count=8 2>/dev/null && df -k /dev/shm | tail -1 && echo alive"], timeout: 60n });
        const out = Buffer.from(r.stdout).toString();
        assert.match(out, /alive\n$/, `exec into the other container works: ${out}`);
        assert.match(out, /^\S+\s+65536\s/, `/dev/shm is a 64 MiB tmpfs: ${out}`);
        const hostShm = join(ctd.stateDir, "io.containerd.grpc.v1.cri", "sandboxes", podSandboxId, "shm", "f");
        assert.equal(await access(hostShm).then(() => true, () => false), handler !== HANDLER, handler === HANDLER ? "kata-ts: the pod's /dev/shm is the guest's, the host tmpfs stays empty" : "runc: the host tmpfs holds it");
        if (handler === HANDLER) {
          const alive = (await processesMentioning(podSandboxId)).map((p) => p.pid);
          for (const pid of vmPids) assert.ok(alive.includes(pid), `the VM's process ${pid} still runs`);
          const podMem = await podCg.memory();
          const sandboxMem = await podCg.sandboxMemory(podSandboxId);
          assert.equal(sandboxMem.oomKills, 0, "no host OOM kill in the sandbox cgroup (shim, QEMU, virtiofsd)");
          assert.equal(podMem.oomKills, 0, "no host OOM kill in the pod cgroup: the guest killed the container");
          assert.ok(podMem.peakBytes > 64 * MiB, `the VM is charged to the pod cgroup (peak ${podMem.peakBytes} bytes)`);
          assert.ok(podMem.peakBytes <= podMem.limitBytes, `pod cgroup peak ${podMem.peakBytes} within its limit ${podMem.limitBytes}`);
          t.diagnostic(`pod cgroup: peak ${(podMem.peakBytes / MiB).toFixed(1)} MiB of ${(podMem.limitBytes / MiB).toFixed(1)} MiB (${JSON.stringify(podMem.byKindMiB)})`);
        }
        await cri.runtime.removeContainer({ containerId: hogId });
      } finally {
        await cri.runtime.stopPodSandbox({ podSandboxId });
        await cri.runtime.removePodSandbox({ podSandboxId });
      }
    } finally {
      await podCg.remove();
    }
  });
}

void test("kata-ts pod under kubelet's systemd cgroup driver: QEMU and virtiofsd run in the pod slice's scope (the node-level shim server in its own), removed with the pod", { timeout: 600_000 }, async () => {
  assert.ok(ctd && cri);
  // kubelet's systemd driver names pod cgroups as nested slices; containerd turns a parent ending in
  // .slice into the runc-style "slice:cri-containerd:<id>" cgroupsPath the shim receives.
  const top = `ktse2e${randomBytes(4).toString("hex")}`;
  const cgroupParent = `/${top}.slice/${top}-pod1.slice`;
  const logDirectory = join(ctd.baseDir, "pods", "default_sysd_uid-sysd");
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name: "sysd", uid: "uid-sysd", logDirectory, cgroupParent });
  const { podSandboxId } = await cri.runtime.runPodSandbox({ config, runtimeHandler: HANDLER });
  const hierarchies = await cgroupHierarchies();
  const scope = `${cgroupParent}/cri-containerd-${podSandboxId}.scope`;
  try {
    const all = await processesMentioning(ctd.baseDir);
    const vmProcs = all.filter((p) => p.cmdline.some((a) => /qemu-system|virtiofsd$/.test(a)));
    assert.equal(vmProcs.filter((p) => p.cmdline[0]?.includes("qemu-system")).length, 1, "one QEMU");
    assert.ok(vmProcs.length >= 2, `QEMU and virtiofsd found: ${vmProcs.map((p) => p.cmdline[0]).join(", ")}`);
    const expected = hierarchies.map((h) => join(h.mount, scope)).sort();
    for (const p of vmProcs) assert.deepEqual((await cgroupDirsOf(p.pid)).sort(), expected, `${p.cmdline[0]} (pid ${p.pid}) is in ${scope}`);
    // The node-level server serves every pod: it is in no pod's cgroup, and no pod is charged for it.
    const shims = all.filter((p) => isNodeShimCmdline(p.cmdline));
    assert.equal(shims.length, 2, "the node's keeper and server");
    const shimCgroups = hierarchies.map((h) => join(h.mount, NODE_SHIM_CGROUP)).sort();
    for (const p of shims) assert.deepEqual((await cgroupDirsOf(p.pid)).sort(), shimCgroups, `${p.cmdline.join(" ")} is in the node shim's cgroup`);
  } finally {
    await cri.runtime.stopPodSandbox({ podSandboxId });
    await cri.runtime.removePodSandbox({ podSandboxId });
  }
  const exists = (p: string) => access(p).then(() => true, () => false);
  for (const h of hierarchies) assert.equal(await exists(join(h.mount, `/${top}.slice`)), false, `the pod's slices and scope are gone from ${h.mount}`);
});
