// The shim's Pod over the sandbox layer's Sandbox (one VM): containerd's containers become
// sandbox containers, with their rootfs mounted on <bundle>/rootfs and shared into the guest.
import { join } from "node:path";
import { openHypervisor } from "../hypervisor/select.js";
import { adoptPooledVm, takePooledVm, type TakenVm } from "../pool/adopt.js";
import type { VmAdopter } from "../sandbox/adoption.js";
import { podAssets } from "../pool/shape.js";
import { Sandbox, type ReattachOptions, type SandboxOptions } from "../sandbox/sandbox.js";
import { cleanupStaleSandbox } from "../sandbox/stale.js";
import { recordedContainers } from "../sandbox/reattach.js";
import { podDns, requireOwnNetwork } from "../sandbox/network/pod-spec.js";
import type { OciProcess, OciSpec as AgentOciSpec } from "../protocol/contract/oci.js";
import { KataError, describeError } from "../util/errors.js";
import { pidNamespaceMode, podSysctls, refuseBlockDevices, refuseSharedPropagation, requireOwnPidAndIpc } from "../sandbox/cri-spec.js";
import type { Logger } from "../util/log.js";
import type { KataConfig } from "../config/schema.js";
import type { ContainerRequest, ContainerStats, ExecRequest, Pod, PodFactory, PodProcess, ReattachProcessOptions, ReattachRequest, SandboxRequest } from "./pod-port.js";
import { pumpOomEvents } from "./oom-events.js";
import { guestMemoryVolumes } from "../sandbox/memory-volumes.js";
import { mountRootfs, unmountRootfs } from "./rootfs-mount.js";
import { PauseProcess, VmProcess, containerInit, execLauncher } from "./vm-process.js";
import { StepClock } from "../util/step-clock.js";
import { traceAgentCalls } from "./start-trace.js";
import { withGuestMemoryLimit, withGuestSpecMemoryLimit, type LimitCover } from "./guest-memory-limit.js";

export class VmPod implements Pod {
  private readonly rootfsDirs = new Map<string, string>();
  private readonly processes = new Set<VmProcess>();
  private readonly sandboxTask: PauseProcess;
  private readonly oomStop = new AbortController();
  /** The sandbox's own (pause) container in the guest, run once a container shares its PID ns. */
  private pidnsHolder: Promise<void> | undefined;

  constructor(
    private readonly sandbox: Sandbox,
    private readonly log: Logger,
    /** The sandbox task's request: its spec and rootfs are the pause container's. */
    private readonly sandboxReq?: Pick<SandboxRequest, "id" | "bundle" | "spec" | "rootfs">,
    /** The pod's limits and what podFixed covers: containers' limits in the guest (guest-memory-limit.ts). */
    private readonly limitCover: LimitCover = { podLimitsMiB: 0, coveredMiB: 0 },
  ) {
    this.sandboxTask = new PauseProcess(this.pid, sandbox.vm?.wait() ?? Promise.resolve(), sandbox.lost);
    void sandbox.lost.then((loss) => {
      this.log.error({ cause: loss.cause, processes: this.processes.size }, `pod lost: ${loss.message}; its processes exit with 137`);
      for (const p of this.processes) p.lose(loss.message);
    });
  }

  get pid(): number {
    return this.sandbox.vm?.pid ?? 0;
  }

  sandboxProcess(): PodProcess {
    return this.sandboxTask;
  }

  async createContainer(req: ContainerRequest): Promise<PodProcess> {
    refuseSharedPropagation(req.spec);
    refuseBlockDevices(req.spec);
    const sandboxPidns = pidNamespaceMode(req.spec) === "pod" && req.id !== this.sandboxReq?.id;
    // CRI NamespaceMode POD: as under runc, the pod's pause process is PID 1 of the namespace the
    // containers share. It runs in the guest only for such pods (no cost for the others).
    if (sandboxPidns) await this.runPidnsHolder();
    const rootfs = join(req.bundle, "rootfs");
    const clock = new StepClock();
    const untrace = traceAgentCalls(clock);
    try {
      try {
        if (req.rootfs.length > 0) {
          // Recorded first: a mount list that fails half-way leaves its first mounts to undo.
          this.rootfsDirs.set(req.id, rootfs);
          await clock.time("container.rootfs-mount", () => mountRootfs(req.rootfs, rootfs));
        }
        const spec = this.guestLimit(req.id, await guestMemoryVolumes(req.spec as AgentOciSpec));
        // Shares the rootfs and volumes on the host, then agent.CreateContainer.
        const container = await clock.time("container.share+create", () => this.sandbox.createContainer({ id: req.id, spec, rootfs, openStdin: req.stdio.stdin !== "", sandboxPidns }));
        const opts = { terminal: req.stdio.terminal, stdin: req.stdio.stdin !== "" };
        this.log.info({ container: req.id, steps: clock.summary(), startedAt: clock.startedAt, timeline: clock.timeline() }, "container created");
        return this.track(new VmProcess(this.pid, containerInit(container), opts, this.log, this.sandbox.lost));
      } catch (err) {
        await this.releaseRootfs(req.id);
        throw err;
      }
    } finally {
      untrace();
    }
  }

  /** Creates and starts the pause container in the guest, once; a failure is retried next time. */
  private runPidnsHolder(): Promise<void> {
    const sb = this.sandboxReq;
    if (sb === undefined) return Promise.reject(new KataError("FAILED_PRECONDITION", "this pod has no sandbox container whose PID namespace could be shared"));
    this.pidnsHolder ??= (async () => {
      const rootfs = join(sb.bundle, "rootfs");
      try {
        if (sb.rootfs.length > 0) {
          this.rootfsDirs.set(sb.id, rootfs);
          await mountRootfs(sb.rootfs, rootfs);
        }
        const holder = await this.sandbox.createContainer({ id: sb.id, spec: sb.spec as AgentOciSpec, rootfs, openStdin: false });
        await holder.start();
      } catch (err) {
        await Promise.resolve()
          .then(() => this.sandbox.container(sb.id).delete())
          .catch(() => undefined);
        await this.releaseRootfs(sb.id);
        throw err;
      }
    })();
    const running = this.pidnsHolder;
    running.catch(() => {
      if (this.pidnsHolder === running) this.pidnsHolder = undefined;
    });
    return running;
  }

  /** A pod taken over (reattachPod): the host dirs its containers' rootfs are mounted on, the pause container running. */
  restore(req: ReattachRequest): void {
    for (const c of req.containers) if (c.rootfsDir !== undefined) this.rootfsDirs.set(c.id, c.rootfsDir);
    if (req.containers.some((c) => c.id === req.id)) this.pidnsHolder = Promise.resolve();
    // The sandbox task was started by the process that created the pod.
    this.sandboxTask.startedElsewhere();
  }

  async reattachProcess(containerId: string, execId: string, opts: ReattachProcessOptions): Promise<PodProcess> {
    this.sandbox.requireLive();
    const proc = this.sandbox.container(containerId).reattachProcess(execId, opts.terminal);
    return this.track(VmProcess.running(this.pid, proc, opts, this.log, this.sandbox.lost));
  }

  async exec(req: ExecRequest): Promise<PodProcess> {
    this.sandbox.requireLive();
    const container = this.sandbox.container(req.containerId);
    const opts = { terminal: req.stdio.terminal, stdin: req.stdio.stdin !== "" };
    return this.track(new VmProcess(this.pid, execLauncher(container, req.execId, req.process as OciProcess, opts), opts, this.log, this.sandbox.lost));
  }

  async removeContainer(id: string): Promise<void> {
    try {
      await this.sandbox.container(id).delete();
    } catch (err) {
      // A lost pod's guest cannot answer; its VM is gone, so the container is too.
      if (this.sandbox.loss === undefined) throw err;
    } finally {
      await this.releaseRootfs(id);
    }
  }

  /** Guest pids: the container's processes live in the VM, where these pids mean something. */
  async pids(containerId: string): Promise<number[]> {
    return this.sandbox.agent.listProcesses(containerId);
  }

  async pause(containerId: string): Promise<void> {
    await this.sandbox.agent.pause(containerId);
  }

  async resume(containerId: string): Promise<void> {
    await this.sandbox.agent.resume(containerId);
  }

  async stats(containerId: string): Promise<ContainerStats> {
    const s = await this.sandbox.agent.stats(containerId);
    return {
      cpuUsageUsec: Number(s.cpuUsageUsec),
      cpuUserUsec: Number(s.cpuUserUsec),
      cpuSystemUsec: Number(s.cpuSystemUsec),
      memoryUsageBytes: Number(s.memoryUsage),
      memoryLimitBytes: Number(s.memoryLimit),
      pidsCurrent: Number(s.pids),
      oomKills: Number(s.oomKills),
    };
  }

  async update(containerId: string, resources: Record<string, unknown>): Promise<void> {
    await this.sandbox.agent.update(containerId, withGuestMemoryLimit(resources, this.limitCover));
  }

  /** The spec with its memory limit as the guest enforces it; logged when it differs. */
  private guestLimit(containerId: string, spec: AgentOciSpec): AgentOciSpec {
    const guest = withGuestSpecMemoryLimit(spec, this.limitCover);
    if (guest !== spec) {
      const limit = (o: AgentOciSpec): unknown => (o.linux?.resources?.memory as { limit?: unknown } | undefined)?.limit;
      this.log.info(
        { container: containerId, limit: limit(spec), guestLimit: limit(guest), ...this.limitCover },
        "container memory limit lowered in the guest by its share of the page metadata of the pod's limits above [runtime] overhead_covers_limits_mib",
      );
    }
    return guest;
  }

  onOom(listener: (containerId: string) => void): void {
    if (this.sandbox.state !== "ready") return;
    // Paced: a guest answering GetOOMEvent in a loop costs the shim a bounded rate of calls.
    // Once the guest is set up (an adopted VM's set-up may still run: no call is added to it).
    this.sandbox
      .guestReady()
      .then(() => pumpOomEvents((signal) => this.sandbox.agent.nextOom(signal), listener, this.oomStop.signal))
      .catch((err: unknown) => this.log.debug({ err: describeError(err) }, "OOM event stream ended"));
  }

  async destroy(): Promise<void> {
    this.oomStop.abort();
    try {
      await this.sandbox.destroy();
    } finally {
      for (const p of this.processes) p.abandon();
      for (const id of [...this.rootfsDirs.keys()]) await this.releaseRootfs(id);
    }
  }

  private track(p: VmProcess): VmProcess {
    this.processes.add(p);
    void p.wait().then(() => this.processes.delete(p));
    return p;
  }

  private async releaseRootfs(id: string): Promise<void> {
    const dir = this.rootfsDirs.get(id);
    this.rootfsDirs.delete(id);
    if (dir !== undefined) await unmountRootfs(dir);
  }
}

/** How a pooled VM becomes the pod's; a test shim wraps the real adopter to inject a fault (test/harness). */
export type PooledVmAdopter = (taken: TakenVm, log: Logger) => VmAdopter;

export function vmPodFactory(log: Logger, adopter: PooledVmAdopter = adoptPooledVm): PodFactory {
  return {
    async createPod(req: SandboxRequest): Promise<Pod> {
      const clock = new StepClock();
      const untrace = traceAgentCalls(clock);
      let pooledVm = false;
      let deferred = false;
      const onGuestSetUp = (err?: unknown): void => {
        untrace();
        if (err === undefined) log.info({ id: req.id, pooled: true, deferred: true, steps: clock.summary(), startedAt: clock.startedAt, timeline: clock.timeline() }, "pod VM ready");
        else log.error({ id: req.id, err: describeError(err), steps: clock.summary(), timeline: clock.timeline() }, "the adopted VM's deferred set-up failed; the sandbox task exits");
      };
      try {
        const pod = await createVmPod(req, clock, log, adopter, (d) => {
          pooledVm = true;
          deferred = d;
        }, onGuestSetUp);
        if (deferred) {
          // The guest's set-up goes on (onGuestSetUp logs its end with every step).
          clock.add("sandbox.reported", 0);
          log.info({ id: req.id, pooled: true, steps: clock.summary(), startedAt: clock.startedAt, timeline: clock.timeline() }, "pod sandbox reported created; its guest set-up goes on");
        } else log.info({ id: req.id, pooled: pooledVm, steps: clock.summary(), startedAt: clock.startedAt, timeline: clock.timeline() }, "pod VM ready");
        return pod;
      } finally {
        if (!deferred) untrace();
      }
    },
    async reattachPod(asked: ReattachRequest): Promise<Pod> {
      // The pod's own (pause) container runs in the guest once a container shared the pod's PID
      // namespace: its record says whether it does, which the caller need not know.
      const recorded = await recordedContainers(asked.id).catch(() => [] as string[]);
      const req = recorded.includes(asked.id) && !asked.containers.some((c) => c.id === asked.id) ? { ...asked, containers: [...asked.containers, { id: asked.id, bundle: asked.bundle, ...(asked.rootfs.length > 0 ? { rootfsDir: join(asked.bundle, "rootfs") } : {}) }] } : asked;
      const sb = await Sandbox.reattach({ id: req.id, containers: req.containers.map((c) => c.id), ...podWatchOptions(req.config) });
      const limitCover = { podLimitsMiB: req.sizing?.limitsMiB ?? 0, coveredMiB: req.config.runtime.overhead_covers_limits_mib };
      const pod = new VmPod(sb, log, req, limitCover);
      pod.restore(req);
      return pod;
    },
    cleanupPod: (sandboxId: string) => cleanupStaleSandbox(sandboxId),
  };
}

/** How a running pod is watched (liveness, TCG idle trim): the same at create and at reattach. */
function podWatchOptions(config: KataConfig): Omit<ReattachOptions, "id" | "containers"> {
  return {
    livenessTimeoutMs: config.agent.liveness_timeout * 1000,
    livenessIntervalMs: config.agent.liveness_interval * 1000,
    ...(config.runtime.hypervisor === "qemu" && config.hypervisor.qemu.tcg_idle_trim_s > 0
      ? { tcgIdleTrim: { idleWindowMs: config.hypervisor.qemu.tcg_idle_trim_s * 1000 }, idleReclaimAgent: config.hypervisor.qemu.tcg_idle_reclaim_agent }
      : {}),
  };
}

async function createVmPod(req: SandboxRequest, clock: StepClock, log: Logger, adopter: PooledVmAdopter, adopted: (deferred: boolean) => void, onGuestSetUp: (err?: unknown) => void): Promise<Pod> {
  // Before anything starts: a hostNetwork pod cannot run in a VM (a clear error for kubelet).
  const network = requireOwnNetwork(req.spec);
  requireOwnPidAndIpc(req.spec);
  const sysctls = podSysctls(req.spec);
  const assets = req.assets ?? (await clock.time("assets", () => podAssets(req.config)));
  const limitCover = { podLimitsMiB: req.sizing.limitsMiB, coveredMiB: req.config.runtime.overhead_covers_limits_mib };
  const opts: SandboxOptions = {
    id: req.id,
    vcpus: req.sizing.vcpus,
    memoryMiB: req.sizing.memoryMiB,
    hostname: typeof req.spec.hostname === "string" ? req.spec.hostname : "",
    dns: await podDns(req.spec),
    sysctls,
    ...(network.kind === "netns" ? { netnsPath: network.path } : {}),
    ...(req.config.runtime.hypervisor === "qemu" ? { accel: req.config.hypervisor.qemu.accel } : {}),
    assets,
    bootTimeoutMs: req.config.agent.dial_timeout * 1000,
    bootStallMs: req.config.agent.boot_stall_timeout * 1000,
    ...podWatchOptions(req.config),
    clock,
    ...(req.signal === undefined ? {} : { signal: req.signal }),
    ...(req.cgroupDirs === undefined ? {} : { cgroupDirs: req.cgroupDirs }),
  };
  // A VM from the pool when one of this pod's shape is ready (src/pool); booted otherwise.
  const pooled = network.kind === "netns" ? await clock.time("pool.take", () => takePooledVm(req.config, req.configSource, assets, req.sizing, req.spec.annotations ?? {}, network.path, log)) : undefined;
  if (pooled !== undefined) {
    try {
      const defer = req.config.factory.deferred_adoption ? { deferGuestSetUpMs: req.config.agent.liveness_timeout * 1000, onGuestSetUp } : {};
      const pod = new VmPod(await Sandbox.create({ ...opts, adopt: adopter(pooled, log), ...defer }), log, req, limitCover);
      adopted(req.config.factory.deferred_adoption);
      return pod;
    } catch (err) {
      // A start cut off while adopting is over: no VM is booted for it.
      if (req.signal?.aborted === true) throw err;
      log.warn({ err: describeError(err), vm: pooled.handle.vmId }, "adopting the pooled VM failed (it is stopped); booting one");
    }
  }
  // The VMM is probed (its version, and a QEMU started to test its seccomp sandbox) only for a VM
  // this shim boots, before anything of the boot is set up: an adopted VM runs already, and the
  // probe's QEMU start would compete with the adoption for the host's CPUs.
  const hypervisor = await clock.time("hypervisor.open", () => openHypervisor(req.config));
  return new VmPod(await Sandbox.create({ ...opts, hypervisor }), log, req, limitCover);
}
