// Pod sizes beyond the host, through containerd's CRI with the kata-ts handler as kubelet drives
// it: a pod whose memory limit exceeds the host's MemTotal must fail RunPodSandbox at once (no VM
// is started) with an error naming the pod's request, where each figure came from, and the host's
// limit, and nothing of it may be left; a pod whose CPU limit exceeds the host's online CPUs runs
// (a limit is a ceiling, runc runs it too) on a VM with all of them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { CriError, type CriClient } from "../../src/cri/client.js";
import { ContainerState, podSandboxConfig, waitForContainerState } from "../../src/cri/pod.js";
import { hostLimits } from "../../src/host/limits.js";
import { useCriFixture } from "../harness/cri-fixture.js";
import { BUSYBOX_IMAGE_REF } from "../harness/images.js";
import { processesMentioning } from "../harness/processes.js";
import { podLeftovers, waitUntilEmpty } from "./pod-leftovers.js";

const HANDLER = "kata-ts";
const fx = useCriFixture();

/** What a pod may leave (pod-leftovers.ts: processes, mounts, sandbox state dirs, virtiofsd pid files). */
function leftovers(): Promise<string[]> {
  assert.ok(fx.ctd);
  return podLeftovers(fx.ctd);
}

async function runPodExpectingError(name: string, resources: { cpuPeriod?: bigint; cpuQuota?: bigint; memoryLimitInBytes?: bigint }): Promise<CriError> {
  assert.ok(fx.ctd && fx.cri);
  const logDirectory = join(fx.ctd.baseDir, "pods", `default_${name}_uid-${name}`);
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name, uid: `uid-${name}`, logDirectory, resources });
  const started = Date.now();
  const err = await fx.cri.runtime.runPodSandbox({ config, runtimeHandler: HANDLER }).then(
    () => assert.fail(`RunPodSandbox of ${name} must fail`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof CriError, String(err));
  assert.ok(Date.now() - started < 60_000, "refused before any VM boots");
  assert.deepEqual((await fx.cri.runtime.listPodSandbox({})).items.map((p) => p.id), []);
  const deadline = Date.now() + 30_000;
  for (let left = await leftovers(); left.length > 0; left = await leftovers()) {
    if (Date.now() > deadline) assert.fail(`leftovers of the refused pod:\n  ${left.join("\n  ")}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return err;
}

void test("sizing: a pod memory limit above the host's MemTotal fails RunPodSandbox naming request, source and limit", { timeout: 180_000 }, async (t) => {
  const host = await hostLimits();
  const limit = BigInt(host.memoryMiB + 40 * 1024) * 1024n * 1024n; // host + 40 GiB
  const err = await runPodExpectingError("bigmem", { memoryLimitInBytes: limit });
  t.diagnostic(`RunPodSandbox error: ${err.message}`);
  const needMiB = 512 + Number(limit / (1024n * 1024n));
  assert.ok(err.message.includes(`pod VM needs ${needMiB} MiB of memory`), `names the request: ${err.message}`);
  assert.ok(err.message.includes(`io.kubernetes.cri.sandbox-memory=${limit}`), `names where it came from: ${err.message}`);
  assert.ok(err.message.includes("hypervisor.qemu.default_memory = 512 (built-in default)"), `names the configured baseline: ${err.message}`);
  assert.ok(err.message.includes(`this host's ${host.memoryMiB} MiB (MemTotal in /proc/meminfo)`), `names the limit: ${err.message}`);
});

void test("sizing: a pod CPU limit above the host's online CPUs runs, as under runc, on a VM with every host CPU", { timeout: 300_000 }, async () => {
  assert.ok(fx.ctd && fx.cri);
  const host = await hostLimits();
  const name = "bigcpu";
  const logDirectory = join(fx.ctd.baseDir, "pods", `default_${name}_uid-${name}`);
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name, uid: `uid-${name}`, logDirectory, resources: { cpuPeriod: 100_000n, cpuQuota: 256n * 100_000n } });
  const { podSandboxId } = await fx.cri.runtime.runPodSandbox({ config, runtimeHandler: HANDLER });
  try {
    const vms = (await processesMentioning(fx.ctd.baseDir)).filter((p) => p.cmdline[0]?.includes("qemu-system"));
    assert.equal(vms.length, 1, "the pod has its VM");
    const smp = vms[0]!.cmdline[vms[0]!.cmdline.indexOf("-smp") + 1];
    assert.equal(smp, String(host.cpus), "256 CPUs asked, the host's online CPUs given");
  } finally {
    await fx.cri.runtime.stopPodSandbox({ podSandboxId });
    await fx.cri.runtime.removePodSandbox({ podSandboxId });
  }
  // The node-level shim server leaves a moment after its last pod (its idle time).
  await waitUntilEmpty("what the pod left", leftovers, 30_000);
});

/** What a container sees of its own memory limit: cgroup v1 (this host's runc) or v2 (the guest's crun, and v2 hosts). */
const READ_OWN_MEMORY_LIMIT =
  "if [ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then cat /sys/fs/cgroup/memory/memory.limit_in_bytes; " +
  "else cg=$(sed -n 's/^0:://p' /proc/self/cgroup); cat /sys/fs/cgroup$cg/memory.max; fi";

async function ownMemoryLimit(cri: CriClient, containerId: string): Promise<bigint> {
  const r = await cri.runtime.execSync({ containerId, cmd: ["sh", "-c", READ_OWN_MEMORY_LIMIT], timeout: 60n });
  const out = Buffer.from(r.stdout).toString().trim();
  assert.equal(r.exitCode, 0, `the container reads its limit: ${out} ${Buffer.from(r.stderr).toString()}`);
  return BigInt(out);
}

void test(
  "sizing: a container with a 3 GiB limit runs under 3 GiB on runc and 45 MiB less in the guest, the page metadata of its limit above what podFixed covers ([runtime] overhead_covers_limits_mib = 512); an update to 2 GiB alike",
  { timeout: 600_000 },
  async (t) => {
    const { ctd, cri } = fx;
    assert.ok(ctd && cri);
    const GiB = 1024n ** 3n;
    const seen: Record<string, bigint> = {};
    const updated: Record<string, bigint> = {};
    for (const handler of ["runc", HANDLER]) {
      const name = `limit-${handler}`;
      const logDirectory = join(ctd.baseDir, "pods", `default_${name}_uid-${name}`);
      await mkdir(logDirectory, { recursive: true });
      const config = podSandboxConfig({ name, uid: `uid-${name}`, logDirectory, resources: { memoryLimitInBytes: 3n * GiB } });
      const { podSandboxId } = await cri.runtime.runPodSandbox({ config, runtimeHandler: handler });
      try {
        const { containerId } = await cri.runtime.createContainer({
          podSandboxId,
          sandboxConfig: config,
          config: { metadata: { name: "sleeper" }, image: { image: BUSYBOX_IMAGE_REF }, command: ["sleep", "3600"], logPath: "sleeper.log", linux: { resources: { memoryLimitInBytes: 3n * GiB } } },
        });
        await cri.runtime.startContainer({ containerId });
        await waitForContainerState(cri, containerId, ContainerState.CONTAINER_RUNNING, { timeoutMs: 240_000 });
        seen[handler] = await ownMemoryLimit(cri, containerId);
        // kubelet's in-place resize goes through UpdateContainerResources: the same rule applies.
        await cri.runtime.updateContainerResources({ containerId, linux: { memoryLimitInBytes: 2n * GiB } });
        updated[handler] = await ownMemoryLimit(cri, containerId);
      } finally {
        await cri.runtime.stopPodSandbox({ podSandboxId });
        await cri.runtime.removePodSandbox({ podSandboxId });
      }
    }
    t.diagnostic(`limits seen in the container: ${JSON.stringify(Object.fromEntries(Object.entries(seen).map(([h, v]) => [h, String(v)])))}`);
    assert.equal(seen.runc, 3n * GiB, "runc: the limit asked");
    // (3072 MiB of the pod's limits - 512 covered) * (1/64 + 1/512) = 40 MiB of guest struct pages + 5 of page tables.
    assert.equal(seen[HANDLER], 3n * GiB - 45n * 1024n * 1024n, "kata-ts: lowered by the metadata podFixed does not cover");
    t.diagnostic(`after UpdateContainerResources to 2 GiB: ${JSON.stringify(Object.fromEntries(Object.entries(updated).map(([h, v]) => [h, String(v)])))}`);
    assert.equal(updated.runc, 2n * GiB, "runc: the updated limit");
    // Its share (2 of the pod's 3 GiB) of the 45 MiB, in whole pages: 30 MiB, 7680 pages.
    assert.equal(updated[HANDLER], 2n * GiB - 7680n * 4096n, "kata-ts: the update lowered alike");
    await waitUntilEmpty("what either pod left", leftovers, 30_000);
  },
);
