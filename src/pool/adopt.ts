// Shim side of the pool: ask the pool daemon for a VM of the pod's shape, and make the VM the pod's.
// Adoption, in order, each undo pushed on the sandbox's stack as it succeeds: record the pids; take
// ownership by renaming the VM's directory out of the pool into the sandbox state dir (the pool's
// watchdog no longer sees it); move QEMU and virtiofsd into the pod's cgroup (the one the sandbox
// names, or else this shim's: the shim joined it before creating the pod) at this shim's priority,
// attach over QMP and connect to the agent; meanwhile join the pod network.
import { rename, rm, writeFile } from "node:fs/promises";
import { getPriority } from "node:os";
import { join } from "node:path";
import type { KataConfig } from "../config/index.js";
import type { GuestAssets } from "../guest/assets.js";
import { vmLayout } from "../hypervisor/qemu/layout.js";
import { TtrpcClient } from "../protocol/ttrpc/index.js";
import type { VmAdopter } from "../sandbox/adoption.js";
import { cgroupDirsByCpu, cgroupDirsByCpuOf } from "../sandbox/host-cgroup.js";
import { virtiofsdPidFile } from "../sandbox/virtiofsd.js";
import { describeError, KataError } from "../util/errors.js";
import type { Logger } from "../util/log.js";
import { AdoptedHelper, AdoptedVm, killPid } from "../hypervisor/qemu/adopted-vm.js";
import { poolPaths } from "./layout.js";
import { joinPodNetwork, pooledGuestNetwork, readPodNetns } from "./network.js";
import type { NetnsSnapshot } from "../sandbox/network/inspect.js";
import { poolCall, type PooledVmHandle } from "./protocol.js";
import { startPoolOwner } from "./owner.js";
import { reniceThreads, withDescendants } from "./priority.js";
import { poolShape } from "./shape.js";

const takeTimeoutMs = 3000;

/** A VM the pool gave this pod, and the pod netns as read before asking (for the join). */
export interface TakenVm {
  handle: PooledVmHandle;
  podNetns: NetnsSnapshot;
}

/** Into these cgroup dirs (one per hierarchy). The writes are independent: all at once. */
async function joinCgroups(pids: number[], dirs: string[]): Promise<void> {
  await Promise.all(pids.flatMap((pid) => dirs.map((d) => writeFile(join(d, "cgroup.procs"), String(pid)))));
}

/** At this process's nice value, every thread. */
async function joinMyPriority(pids: number[]): Promise<void> {
  const nice = getPriority(0);
  await Promise.all(pids.map((pid) => reniceThreads(pid, nice)));
}

/**
 * A VM of the pod's shape from the pool, or undefined (pool off or not running, no VM of that shape
 * ready, or a pod network a pooled VM cannot take): the pod then boots its own VM.
 */
export async function takePooledVm(config: KataConfig, configSource: string | undefined, assets: GuestAssets, sizing: { vcpus: number; memoryMiB: number }, annotations: Record<string, string>, netnsPath: string, log: Logger): Promise<TakenVm | undefined> {
  if (!config.factory.enable_pool) return undefined;
  if (config.runtime.hypervisor !== "qemu") {
    log.warn({ hypervisor: config.runtime.hypervisor }, "[factory] enable_pool is set but the VM pool keeps QEMU VMs only; booting one");
    return undefined;
  }
  try {
    const podNetns = await readPodNetns(netnsPath);
    if (podNetns.interfaces.length !== 1) return undefined;
    const shape = poolShape(config, assets, sizing, annotations[config.factory.tenant_annotation] ?? "");
    const res = await poolCall(poolPaths().socket, { op: "take", shape }, takeTimeoutMs).catch(async (err: unknown) => {
      // No daemon answering: this shim starts the node's pool (docs/pool.md "Who runs the pool").
      if (err instanceof KataError && err.code === "UNAVAILABLE") {
        await startPoolOwner(configSource === undefined || configSource === "built-in defaults" ? undefined : configSource, log);
      }
      throw err;
    });
    if (!res.ok) throw new KataError("INTERNAL", `the VM pool refused: ${res.error}`);
    if (res.vm === undefined) {
      log.info("no pooled VM of this pod's shape is ready; booting one");
      return undefined;
    }
    return { handle: res.vm, podNetns };
  } catch (err) {
    log.warn({ err: describeError(err) }, "no VM from the pool; booting one");
    return undefined;
  }
}

export function adoptPooledVm(taken: TakenVm, log: Logger): VmAdopter {
  const { handle, podNetns } = taken;
  return async (ctx) => {
    const t0 = performance.now();
    const { clock } = ctx;
    const vmStateDir = join(ctx.vmDir, "vm");
    await clock.time("adopt.record", () => ctx.recordPids({ vmPid: handle.qemuPid, virtiofsdPid: handle.virtiofsdPid, virtiofsdPidFile: virtiofsdPidFile(join(handle.dir, "vfs.sock")), agentSocketPath: vmLayout(vmStateDir).agentSocketPath }));
    try {
      await clock.time("adopt.rename", () => rename(handle.dir, ctx.vmDir));
    } catch (err) {
      // Still the pool's: its watchdog or stop removes it. Nothing of it is ours to undo.
      throw new KataError("INTERNAL", `cannot take pooled VM ${handle.vmId} from ${handle.dir}`, { cause: err });
    }
    // virtiofsd leaves its pid file (named after the socket path it started with) when killed.
    ctx.undo.push("remove virtiofsd's pid file", () => rm(virtiofsdPidFile(join(handle.dir, "vfs.sock")), { force: true }));
    const virtiofsd = new AdoptedHelper(handle.virtiofsdPid, /^virtiofsd/);
    ctx.undo.push("stop virtiofsd", () => virtiofsd.stop());
    // The VM is ours from here: stop it should anything below fail.
    ctx.undo.push("stop the adopted QEMU", () => killPid(handle.qemuPid, /^qemu/));
    // Two independent halves at once: the VM (priority first, so the guest answers at full speed)
    // up to its agent answering, and the pod network's host side. Each pushes its own undo steps.
    // Of the pod's cgroups only the CPU one (the weight) comes before the guest's calls: in cgroup
    // v1 each hierarchy's write for each process waits on the kernel's cgroup-wide lock (an RCU
    // grace period), ~1 ms each, and with ~10 hierarchies and 3 processes that was ~26 ms on the
    // pod start's path. The others (memory, pids, ...: accounting and limits, nothing the guest's
    // speed depends on) are joined beside the guest's calls and awaited with the network's host
    // side, before the sandbox is ready: no pod code runs before (docs/pool.md "Adoption").
    let otherCgroups: Promise<void> = Promise.resolve();
    const vmHalf = (async () => {
      const moved = await clock.time("adopt.cgroup", async () => {
        const [pids, dirs] = await Promise.all([Promise.all([withDescendants(handle.qemuPid), withDescendants(handle.virtiofsdPid)]).then((p) => p.flat()), ctx.cgroupDirs === undefined ? cgroupDirsByCpuOf(process.pid) : cgroupDirsByCpu(ctx.cgroupDirs)]);
        await Promise.all([joinMyPriority(pids), joinCgroups(pids, dirs.cpu)]);
        return { pids, other: dirs.other };
      });
      otherCgroups = clock.time("adopt.cgroup-other", () => joinCgroups(moved.pids, moved.other));
      otherCgroups.catch(() => undefined); // awaited with the network's host side below
      const vm = await clock.time("adopt.qmp", () => AdoptedVm.attach({ id: handle.vmId, pid: handle.qemuPid, stateDir: vmStateDir, accel: handle.accel }));
      ctx.undo.push("stop VM", async () => {
        await vm.stop({ timeoutMs: 3000 });
      });
      // No health check first: the pool's PrepareSandbox found the agent answering, and the
      // sandbox's first call (CreateSandbox, with its deadline) is the check; a round trip saved.
      const agent = await clock.time("adopt.agent-connect", () => TtrpcClient.connect(vm.agentSocketPath, { timeoutMs: 5000 }));
      ctx.undo.push("close the agent connection", () => Promise.resolve(agent.close()));
      return { vm, agent };
    })();
    const netnsPath = ctx.netnsPath;
    const netHalf = netnsPath === undefined ? Promise.resolve(undefined) : clock.time("adopt.network", () => joinPodNetwork(netnsPath, podNetns, handle, ctx.undo));
    netHalf.catch(() => undefined); // handed over below, or awaited here
    let vmUp: Awaited<typeof vmHalf>;
    try {
      vmUp = await vmHalf;
    } catch (err) {
      // Settled before the failure is thrown: the caller unwinds the undo stack only once it stopped pushing.
      await Promise.allSettled([netHalf, otherCgroups]);
      throw err;
    }
    const { vm, agent } = vmUp;
    log.info({ vm: handle.vmId, bootedAt: handle.bootedAt, ms: Math.round(performance.now() - t0) }, "adopted a pooled VM");
    // The network's host side may still be running: the guest's set-up (CreateSandbox, then
    // UpdateNetwork with what the guest is told, known from the netns read before the take) starts meanwhile.
    // The sandbox is ready once both are done; a failed cgroup write fails the adoption (after the host side settled).
    const cgroupsJoined = otherCgroups;
    const net = Promise.allSettled([netHalf, cgroupsJoined]).then(([n, c]) => {
      if (n.status === "rejected") throw n.reason;
      if (c.status === "rejected") throw new KataError("INTERNAL", `cannot move the adopted VM into the pod's cgroups: ${describeError(c.reason)}`, { cause: c.reason });
      return n.value;
    });
    net.catch(() => undefined); // handed over: the sandbox awaits it
    return { vm, agent, virtiofsd, net, ...(netnsPath === undefined ? {} : { guestNetwork: pooledGuestNetwork(podNetns, handle) }) };
  };
}
