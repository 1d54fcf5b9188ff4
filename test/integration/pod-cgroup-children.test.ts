// A pod placed the way a process serving many pods places it (withPodCgroupForChildren,
// src/shim/pod-cgroup.ts): a real pod VM (QEMU, TCG here, with its virtiofsd) made from this test
// process, with the sandbox's cgroupsPath under a kubelet-like pod cgroup the test makes. QEMU and
// virtiofsd (and what virtiofsd forks) start in the pod's cgroup in every hierarchy, the pod's
// memory cgroup is charged the guest's memory (on cgroup v1 the kernel does not move charges with a
// process: they must be there before QEMU allocates), and this process never moves. Destroy
// removes the cgroups; nothing is left behind. A pooled VM adopted by a sandbox given the pod's
// cgroup dirs is moved into them, not into the caller's.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { parseConfig, selectedVmmConfig } from "../../src/config/index.js";
import { adoptPooledVm } from "../../src/pool/adopt.js";
import { PooledVm } from "../../src/pool/pooled-vm.js";
import { poolShape } from "../../src/pool/shape.js";
import { cgroupHierarchies, makeCgroup } from "../../src/sandbox/host-cgroup.js";
import type { NetnsSnapshot } from "../../src/sandbox/network/inspect.js";
import { Sandbox } from "../../src/sandbox/sandbox.js";
import { readRecord } from "../../src/sandbox/state-file.js";
import { withPodCgroupForChildren } from "../../src/shim/pod-cgroup.js";
import type { Pod } from "../../src/shim/pod-port.js";
import { vmPodFactory } from "../../src/shim/vm-pod.js";
import { sandboxStateDir } from "../../src/util/paths.js";
import { createLogger } from "../../src/util/log.js";
import { createPodCgroup, type PodCgroup } from "../harness/pod-cgroup.js";
import { virtiofsdPidFiles } from "../harness/leaks.js";
import { leftovers, makeVmFixture, type VmFixture } from "./agent-container-vm-fixture.js";

const MiB = 1024 * 1024;
const sandboxId = "podcg-children";

let fx: VmFixture | undefined;
let podCgroup: PodCgroup | undefined;
let pod: Pod | undefined;

before(async () => {
  fx = await makeVmFixture();
  podCgroup = await createPodCgroup(2048 * MiB);
});

after(async () => {
  await pod?.destroy();
  const left = fx === undefined ? [] : [...leftovers(fx.dir, fx.stateRoot), ...(await virtiofsdPidFiles(fx.stateRoot))];
  await podCgroup?.remove();
  await fx?.cleanup();
  assert.deepEqual(left, [], "nothing left after the pod is destroyed");
});

/** `pid` and every process below it (/proc/<pid>/task/<tid>/children). */
async function withDescendants(pid: number): Promise<number[]> {
  const out = [pid];
  for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
    const kids = (await readFile(`/proc/${pid}/task/${tid}/children`, "utf8").catch(() => "")).trim();
    for (const k of kids === "" ? [] : kids.split(" ")) out.push(...(await withDescendants(Number(k))));
  }
  return out;
}

/** /proc/<pid>/cgroup lines ("<id>:<controllers>:<path>"), sorted. */
async function cgroupLines(pid: number | "self"): Promise<string[]> {
  return (await readFile(`/proc/${pid}/cgroup`, "utf8")).trim().split("\n").sort();
}

/**
 * Pss_Anon + Pss_Shmem of a process, bytes: its anonymous memory and its share of shared memory
 * (guest RAM, which virtiofsd maps too; TCG's code buffer, mapped twice by QEMU under split-wx).
 */
async function anonAndShmemPss(pid: number): Promise<number> {
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, "utf8");
  const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(rollup)?.[1] ?? 0);
  return (kib("Pss_Anon") + kib("Pss_Shmem")) * 1024;
}

void test("a pod placed for many pods: QEMU and virtiofsd start in the pod's cgroup, which holds the guest's memory; the caller stays; destroy removes it", { timeout: 600_000 }, async () => {
  assert.ok(fx && podCgroup);
  const log = createLogger("test");
  const mine = await cgroupLines("self");
  const cgroupsPath = `${podCgroup.parent}/${sandboxId}`;
  const factory = withPodCgroupForChildren(vmPodFactory(log), log);
  const config = parseConfig("", "built-in defaults");
  pod = await factory.createPod({
    id: sandboxId,
    bundle: fx.dir,
    spec: {
      hostname: "podcg",
      annotations: { "io.kubernetes.cri.container-type": "sandbox" },
      linux: { cgroupsPath, namespaces: [{ type: "network" }, { type: "pid" }, { type: "ipc" }, { type: "mount" }] },
    },
    rootfs: [],
    config,
    assets: fx.assets,
    sizing: { vcpus: 1, memoryMiB: 512, limitsMiB: 0 },
  });
  assert.deepEqual(await cgroupLines("self"), mine, "the test process stayed in its own cgroups while the pod was made");

  const hierarchies = await cgroupHierarchies();
  const record = await readRecord(join(sandboxStateDir(sandboxId), "state.json"));
  const qemu = pod.pid;
  const virtiofsd = record.virtiofsdPid;
  assert.ok(qemu > 0 && virtiofsd !== undefined, `QEMU ${qemu}, virtiofsd ${virtiofsd}`);
  const placed = [...(await withDescendants(qemu)), ...(await withDescendants(virtiofsd))];
  assert.ok(placed.length >= 2);
  for (const pid of placed) {
    const lines = await cgroupLines(pid);
    const comm = (await readFile(`/proc/${pid}/comm`, "utf8")).trim();
    assert.equal(lines.length, hierarchies.length, `${comm} ${pid}: one line per hierarchy`);
    for (const l of lines) assert.ok(l.endsWith(`:${cgroupsPath}`), `${comm} ${pid} is in the pod's cgroup in every hierarchy: ${l}`);
  }

  // The charges came with the allocations: what QEMU and virtiofsd hold of their own (guest RAM,
  // heaps, TCG's translation cache) is in the pod's memory cgroup.
  const memory = await podCgroup.sandboxMemory(sandboxId);
  let held = 0;
  for (const pid of placed) held += await anonAndShmemPss(pid);
  log.info({ usageMiB: +(memory.usageBytes / MiB).toFixed(1), heldAnonShmemPssMiB: +(held / MiB).toFixed(1), byKindMiB: memory.byKindMiB }, "pod cgroup memory");
  assert.ok(memory.usageBytes >= 32 * MiB, `the pod's cgroup holds tens of MiB: ${(memory.usageBytes / MiB).toFixed(1)} MiB`);
  assert.ok(memory.usageBytes >= 0.9 * held, `it holds QEMU's and virtiofsd's own memory: ${(memory.usageBytes / MiB).toFixed(1)} MiB charged, they hold ${(held / MiB).toFixed(1)} MiB`);
  assert.ok((await podCgroup.memory()).usageBytes >= memory.usageBytes, "and so does the kubelet-like pod cgroup above it");

  await pod.destroy();
  pod = undefined;
  assert.deepEqual(await cgroupLines("self"), mine, "the test process never moved");
  for (const h of hierarchies) {
    assert.equal(await stat(join(h.mount, cgroupsPath)).catch(() => undefined), undefined, `${h.mount}${cgroupsPath} removed`);
  }
});

void test("a pooled VM adopted by a sandbox given the pod's cgroup dirs moves into them, not into the caller's cgroups", { timeout: 600_000 }, async () => {
  assert.ok(fx && podCgroup);
  const log = createLogger("test");
  const mine = await cgroupLines("self");
  const config = parseConfig("", "built-in defaults");
  const vmm = selectedVmmConfig(config);
  const shape = poolShape(config, fx.assets, { vcpus: vmm.default_vcpus, memoryMiB: vmm.default_memory }, "");
  const pooled = await PooledVm.boot(shape, join(fx.dir, "vms"), { bootTimeoutMs: 300_000, warmUpContainers: false, rehearsePodPath: false });
  const handle = pooled.handOver();
  const cgroupsPath = `${podCgroup.parent}/adopted`;
  const made = await makeCgroup(cgroupsPath);
  try {
    const sb = await Sandbox.create({ id: "podcg-adopted", adopt: adoptPooledVm({ handle, podNetns: {} as NetnsSnapshot }, log), cgroupDirs: made.dirs });
    try {
      const placed = [...(await withDescendants(handle.qemuPid)), ...(await withDescendants(handle.virtiofsdPid))];
      for (const pid of placed) {
        for (const l of await cgroupLines(pid)) assert.ok(l.endsWith(`:${cgroupsPath}`), `${pid} moved into the pod's cgroup in every hierarchy: ${l}`);
      }
      assert.deepEqual(await cgroupLines("self"), mine, "the test process stayed in its own cgroups");
    } finally {
      await sb.destroy();
    }
  } finally {
    await made.remove(2000);
  }
  for (const d of made.dirs) assert.equal(await stat(d).catch(() => undefined), undefined, `${d} removed`);
});
