// One pooled VM, daemon side: booted pod-neutral (empty share, no pod network, no sandbox set up in
// the guest) and kept until a shim takes it or the pool stops. Set-up in order (directory, shared
// mount point, netns, virtiofsd, QEMU up to an answering agent) with every undo pushed as it
// succeeds. QEMU runs in a netns of its own and creates its tap there; the netns's name is removed
// once QEMU runs, so the netns (and the tap) live exactly as long as QEMU. Should the daemon die,
// its watchdog kills whatever names this VM's dir (watchdog.ts).
import { describeError, isKataError, KataError } from "../util/errors.js";
import { randomBytes } from "node:crypto";
import { mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { resolveAccel } from "../hypervisor/accel.js";
import { QemuHypervisor, type QemuVm } from "../hypervisor/qemu/index.js";
import type { VmExit } from "../hypervisor/types.js";
import { SHARED_FS_TAG, WARM_UP_CONTAINERS } from "../protocol/contract/guest.js";
import { bootVm } from "../sandbox/agent-boot.js";
import { AgentClient } from "../sandbox/agent-client.js";
import { makeSharedMountPoint, unmountAll } from "../sandbox/mounts.js";
import { tapName } from "../sandbox/network/inspect.js";
import { isUnimplemented } from "../sandbox/network/pod-network.js";
import { UndoStack } from "../sandbox/undo-stack.js";
import { Virtiofsd, virtiofsdPidFile } from "../sandbox/virtiofsd.js";
import { run } from "../util/exec.js";
import { killPid } from "../hypervisor/qemu/adopted-vm.js";
import type { PooledVmHandle } from "./protocol.js";
import { pooledVmNetns, pooledVmPaths, type PooledVmPaths } from "./layout.js";
import type { PoolShape } from "./shape.js";
import { lowerPooledProcess } from "./priority.js";
import type { Logger } from "../util/log.js";

/** Where reclaimUntaken moves a VM dir it claims back (the watchdog strips the suffix to find its processes). */
export function untakenDir(dir: string): string {
  return `${dir}${UNTAKEN_SUFFIX}`;
}
export const UNTAKEN_SUFFIX = ".untaken";

export interface BootPolicy {
  bootTimeoutMs: number;
  stallMs?: number;
  /** The pool stops: the boot ends (CANCELLED) and undoes what it set up. */
  signal?: AbortSignal;
  /**
   * The guest runs one container of its own image once ready (kata_ts.warm_up=containers,
   * [factory] warm_up_containers), so a pod's first container start and exec find crun and the
   * agent's path warm (docs/containers.md "Warm-up").
   */
  warmUpContainers?: boolean;
  /**
   * Under TCG, once prepared: empty QEMU's translation cache and have the guest rehearse a pod's
   * path once more (adoption's guest calls, a container created, started, exec'd into, removed),
   * so the cache holds that path when the VM is offered ([factory] rehearse_pod_path; docs/pool.md
   * "Flush and rehearse"). A failed flush or rehearsal fails the boot: the VM is not offered.
   */
  rehearsePodPath?: boolean;
  /** The flush's deadline (default 10 s: the VM is paused for a few round trips). */
  flushTimeoutMs?: number;
  /** QEMU and virtiofsd (every thread, and their children) at this nice value in the VMs' low-weight cgroup; unset: left where they start. */
  nice?: number;
  log?: Logger;
}

/** A locally administered unicast MAC (02:...). */
function randomMac(): string {
  const b = randomBytes(5);
  return ["02", ...[...b].map((x) => x.toString(16).padStart(2, "0"))].join(":");
}

/** How long the flush may take (the VM is paused for a few gdbstub round trips). */
const FLUSH_MS = 10_000;

/**
 * Empty TCG's cache, then the guest runs the pod's path once more (src/agent/pod-path-rehearsal.ts),
 * so what is cached at the offer is that path and not the first PrepareSandbox's tail. The flush's
 * gdbstub listens in the VM's dir (0700, root's) for its few round trips only. Anything failing
 * throws: the caller stops the VM and the pool boots another.
 */
async function flushAndRehearse(vm: QemuVm, agent: AgentClient, dir: string, deadline: number, flushMs: number, log: Logger | undefined): Promise<void> {
  const t0 = performance.now();
  await vm.flushTcgCache(join(dir, "tcg-flush.sock"), flushMs).catch((err: unknown) => {
    // A QEMU that cannot be made to flush this way (not 7.2): the rehearsal still runs, on the
    // cache as it is; the VM is offered (discarding it would only boot another that cannot either).
    if (!isKataError(err, "FAILED_PRECONDITION")) throw err;
    log?.warn({ vm: vm.id, err: describeError(err) }, "the pooled VM's TCG cache could not be flushed before the rehearsal; rehearsing on it as it is");
  });
  const tFlush = performance.now();
  await agent.rehearsePodPath(Math.max(deadline - Date.now(), 60_000)).catch((err: unknown) => {
    // An agent older than the rehearsal reads the call as a second plain PrepareSandbox, which it
    // refuses: its VM is intact (only its cache was emptied), so it is offered, slower.
    if (!isKataError(err, "ALREADY_EXISTS")) throw err;
    log?.warn({ vm: vm.id, err: describeError(err) }, "the pooled VM's agent cannot rehearse the pod path (guest assets older than the pool): offered without");
  });
  log?.info({ vm: vm.id, flushMs: Math.round(tFlush - t0), rehearsalMs: Math.round(performance.now() - tFlush) }, "pooled VM: TCG cache flushed and the pod path rehearsed");
}

export class PooledVm {
  private constructor(
    readonly handle: PooledVmHandle,
    readonly paths: PooledVmPaths,
    private readonly vm: QemuVm,
    private readonly virtiofsd: Virtiofsd,
    private readonly undo: UndoStack,
    /** Held open while pooled (see boot), closed at the hand-over. */
    private readonly agent: { close(): void },
  ) {}

  /** Resolves when QEMU ends (while pooled: the VM died and must be replaced). */
  ended(): Promise<VmExit> {
    return this.vm.wait();
  }

  static async boot(shape: PoolShape, vmsDir: string, policy: BootPolicy): Promise<PooledVm> {
    const vmId = `p${randomBytes(6).toString("hex")}`;
    const deadline = Date.now() + policy.bootTimeoutMs;
    const paths = pooledVmPaths(vmsDir, vmId);
    const undo = new UndoStack();
    try {
      await mkdir(paths.dir, { recursive: true, mode: 0o700 });
      undo.push("remove the VM dir", () => rm(paths.dir, { recursive: true, force: true }));
      await mkdir(paths.sharedDir);
      undo.push("unmount the share", () => unmountAll(paths.sharedDir));
      await makeSharedMountPoint(paths.sharedDir);
      const netns = pooledVmNetns(vmId);
      await run("ip", ["netns", "add", netns], { timeoutMs: 15_000 });
      let netnsNamed = true;
      const dropNetnsName = async (): Promise<void> => {
        if (netnsNamed) await run("ip", ["netns", "del", netns], { timeoutMs: 15_000, allowNonZero: true });
        netnsNamed = false;
      };
      undo.push("remove the netns name", dropNetnsName);
      const vfs = await Virtiofsd.start({ sharedDir: paths.sharedDir, socketPath: paths.virtiofsdSocket, logPath: paths.virtiofsdLog });
      undo.push("stop virtiofsd", () => vfs.stop());
      // The daemon runs at normal priority (it answers takes); what it boots goes low at once.
      const lower = async (pid: number | undefined): Promise<void> => {
        if (pid === undefined || policy.nice === undefined) return;
        await lowerPooledProcess(pid, policy.nice).catch((err: unknown) => policy.log?.warn({ err: describeError(err), pid }, "a pooled VM's process stays at the daemon's priority"));
      };
      await lower(vfs.pid);
      const accel = await resolveAccel(shape.accel);
      // The flush and rehearsal: TCG only (KVM has no translation cache), after the container warm-up.
      const rehearse = policy.rehearsePodPath === true && policy.warmUpContainers === true && accel === "tcg";
      const mac = randomMac();
      const tap = tapName(0);
      const hypervisor = await QemuHypervisor.open({
        binary: shape.qemuPath,
        machine: shape.qemuMachine,
        imageDevice: shape.imageDevice,
        hugeGuestRam: shape.hugeGuestRam === true,
        ...(shape.tcgSplitWx === true ? { tcgSplitWx: true } : {}),
        ...(shape.tcgTbSizeMiB === undefined ? {} : { tcgTbSizeMiB: shape.tcgTbSizeMiB }),
      });
      const booted = await bootVm(
        {
          id: vmId,
          stateDir: paths.vmStateDir,
          vcpus: shape.vcpus,
          memoryMiB: shape.memoryMiB,
          kernelPath: shape.kernelPath,
          ...(shape.initrdPath === undefined ? {} : { initrdPath: shape.initrdPath }),
          rootfsPath: shape.rootfsPath,
          ...(shape.rootfsDevice === undefined ? {} : { rootfsDevice: shape.rootfsDevice }),
          kernelCmdline: policy.warmUpContainers === true ? [...shape.kernelCmdline, WARM_UP_CONTAINERS] : shape.kernelCmdline,
          ...(shape.kernelTraits === undefined ? {} : { kernelTraits: shape.kernelTraits }),
          accel,
          sharedFs: { socketPath: paths.virtiofsdSocket, tag: SHARED_FS_TAG },
          netDevices: [{ tapName: tap, mac }],
          netnsPath: `/var/run/netns/${netns}`,
        },
        {
          deadlineMs: policy.bootTimeoutMs,
          ...(policy.stallMs === undefined ? {} : { stallMs: policy.stallMs }),
          ...(policy.signal === undefined ? {} : { signal: policy.signal }),
          hypervisor,
          // QEMU is in the netns (and opened its tap there): the name is no longer needed. From
          // here the guest boots: in the low-weight cgroup (QEMU's own start before its QMP socket
          // answered, ~0.1 s of CPU, ran at the daemon's priority).
          onStarted: async (started) => {
            await lower(started.pid);
            await dropNetnsName();
          },
        },
      );
      const vm = booted.vm as QemuVm;
      undo.push("stop QEMU", async () => {
        await vm.stop({ timeoutMs: 3000 });
      });
      // Threads QEMU and virtiofsd made since (by a thread not lowered yet) go low too.
      await lower(vm.pid);
      await lower(vfs.pid);
      // Pod-neutral preparation, paid here rather than while a pod waits (docs/pool.md): the guest
      // clock set, the empty share mounted, and the network call's code and `ip -batch` run once
      // read-only (a fresh guest's first `ip` costs 1-2 s under TCG: its binary and libraries paged
      // in from the image, the agent's exec path compiled). Nothing of a pod is involved. An agent
      // without PrepareSandbox (older image) gets the read-only route listing only. The connection
      // stays open while the VM is pooled: with no host connected the agent polls its virtio-serial
      // port every 20 ms, ~80 millicores of host CPU per idle pooled VM under TCG, and new guest
      // code for TCG to translate (docs/pool.md "A pooled VM's idle"); connected, its read just
      // blocks. It is closed at the hand-over; the adopter opens its own. Within the boot's deadline:
      // at the pool's low CPU weight on a busy host, the guest runs many times slower.
      // The daemon's stop cuts a pooled boot short here too: PrepareSandbox (with the container
      // warm-up, tens of seconds at the pool's priority) ends when its connection closes.
      const cutShort = (): void => booted.agent.close();
      policy.signal?.addEventListener("abort", cutShort, { once: true });
      try {
        if (policy.signal?.aborted === true) throw new KataError("CANCELLED", "the pool is stopping");
        const agent = new AgentClient(booted.agent);
        await agent.prepareSandbox(SHARED_FS_TAG, Math.max(deadline - Date.now(), 60_000)).catch(async (err: unknown) => {
          if (!isUnimplemented(err)) throw err;
          await agent.updateRoutes([]);
        });
        if (rehearse) await flushAndRehearse(vm, agent, paths.dir, deadline, policy.flushTimeoutMs ?? FLUSH_MS, policy.log);
      } catch (err) {
        booted.agent.close();
        throw err;
      } finally {
        policy.signal?.removeEventListener("abort", cutShort);
      }
      undo.push("close the agent connection", () => Promise.resolve(booted.agent.close()));
      const handle: PooledVmHandle = {
        vmId,
        dir: paths.dir,
        qemuPid: vm.pid ?? 0,
        virtiofsdPid: vfs.pid ?? 0,
        accel: vm.accel ?? "tcg",
        tapName: tap,
        mac,
        bootedAt: new Date().toISOString(),
      };
      return new PooledVm(handle, paths, vm, vfs, undo, booted.agent);
    } catch (err) {
      await undo.unwind().catch(() => undefined);
      throw err;
    }
  }

  /** Give the VM away: nothing here stops it any more (the adopter renames its dir and owns it). */
  handOver(): PooledVmHandle {
    // Before the adopter connects: QEMU's agent socket takes one client at a time (a connection
    // made meanwhile waits in its backlog until this one is closed).
    this.agent.close();
    this.vm.detach();
    // The pod's shim owns it now; held, it would keep a stopping pool daemon alive until the pod ends.
    this.virtiofsd.release();
    return this.handle;
  }

  /**
   * A handed-over VM that no shim took in time (its shim died, or its start was cut off, between the
   * take answer and its rename): claim the dir back by renaming it too, which is atomic against the
   * shim's own rename (exactly one of the two wins: a shim that loses boots its own VM), then kill
   * QEMU and virtiofsd (detached at hand-over: not stopped by destroy()) and remove the share mount,
   * virtiofsd's pid file and the dir. The claimed name stays under vms/ (the watchdog sweeps it
   * should the daemon die meanwhile). False: a shim took it, nothing done.
   */
  async reclaimUntaken(): Promise<boolean> {
    const claimed = untakenDir(this.paths.dir);
    try {
      await rename(this.paths.dir, claimed);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw err;
    }
    await killPid(this.handle.qemuPid, /^qemu/);
    await killPid(this.handle.virtiofsdPid, /^virtiofsd/, true);
    await rm(virtiofsdPidFile(this.paths.virtiofsdSocket), { force: true });
    await unmountAll(join(claimed, "shared"));
    await rm(claimed, { recursive: true, force: true });
    return true;
  }

  /** Stop QEMU and virtiofsd, remove the netns name, share and directory. */
  async destroy(): Promise<void> {
    await this.undo.unwind();
  }
}
