// One sandbox = one VM. Set-up in order (state dir, shared dir, pod network, virtiofsd, VM, agent,
// guest sandbox) with every step's undo pushed as it succeeds, so destroy() and a failed create both
// tear down in reverse order. The state file lets another process find and clean up what runs.
// An adopted VM's guest set-up may be deferred (deferGuestSetUpMs): create() returns once the VM
// is the pod's on the host, containers wait for the rest, and its failure makes the sandbox lost.
// While it runs, every part it depends on is watched (pod-watch.ts): when one fails, the sandbox
// is lost: the VM and helpers are killed at once, every agent call still waiting fails, and `lost`
// says why. destroy() always finishes: the guest gets a deadline to remove its containers, then
// the VM is killed.
import { randomBytes } from "node:crypto";
import { mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describeError, KataError } from "../util/errors.js";
import { createLogger } from "../util/log.js";
import { StepClock } from "../util/step-clock.js";
import { loadGuestAssets, type GuestAssets } from "../guest/assets.js";
import { NoSharedFsError } from "../hypervisor/no-shared-fs.js";
import { resolveAccel } from "../hypervisor/accel.js";
import { bootVm, type BootedVm } from "./agent-boot.js";
import { BootStalledError } from "../hypervisor/boot-progress.js";
import { defaultHypervisor } from "../hypervisor/select.js";
import type { Accel, Hypervisor, Vm, VmConfig } from "../hypervisor/types.js";
import type { OciSpec } from "../protocol/contract/oci.js";
import { ADOPTED_VM_DIR, type AdoptedHelperProcess, type AdoptedVmParts, type VmAdopter } from "./adoption.js";
import { AgentClient, type GuestFileSpec, type GuestMountSpec } from "./agent-client.js";
import { SandboxContainer, type ContainerHooks } from "./container.js";
import { SHARED_FS_TAG } from "../protocol/contract/guest.js";
import { sandboxLayout, type SandboxLayout } from "./guest-layout.js";
import { pushUnshare, shareContainer } from "./host-spec.js";
import { attachBlockContainer } from "./block-rootfs.js";
import { sandboxImagesDir } from "../util/paths.js";
import { Lifecycle } from "./lifecycle.js";
import { makeSharedMountPoint, unmountAll } from "./mounts.js";
import { PodWatch, type SandboxLoss } from "./pod-watch.js";
import { readRecord, writeRecord, type SandboxRecord, type SandboxStatus } from "./state-file.js";
import { pushTeardown, reattachTarget, takeOverVm } from "./reattach.js";
import { UndoStack } from "./undo-stack.js";
import { DeferredSetUp } from "./deferred-setup.js";
import { Virtiofsd } from "./virtiofsd.js";
import { TcgIdleTrimmer, type TcgIdleTrimmerOptions } from "./tcg-idle-trimmer.js";
import { agentIdleReclaim } from "./agent-idle-reclaim.js";
import { canTrimTcgCache } from "../hypervisor/types.js";
import { attachPodNetwork, configureGuestNetwork, podNetworkRecord, type GuestNetworkView, type PodNetwork } from "./network/pod-network.js";

const log = createLogger("sandbox");

const defaultBootTimeoutMs = 120_000;
/** A healthy TCG boot is never silent this long (longest gap seen here: ~3 s, node starting). */
const defaultBootStallMs = 30_000;
const defaultBootAttempts = 2;
/** Not worth another boot with less time than this left. */
const minRetryMs = 10_000;
/** Health.Check unanswered this long: the guest is wedged (agent.liveness_timeout). */
const defaultLivenessTimeoutMs = 30_000;
/** destroy() gives the guest this long to remove its containers; then the VM is killed. */
const guestTeardownMs = 15_000;

export interface SandboxOptions {
  id: string;
  vcpus?: number;
  memoryMiB?: number;
  hostname?: string;
  dns?: string[];
  accel?: Accel;
  assets?: GuestAssets;
  hypervisor?: Hypervisor;
  /** How long the VM may take from start to its agent answering (TCG is slow). */
  bootTimeoutMs?: number;
  /** Console silence that counts as a stuck boot (0: never give up before bootTimeoutMs). */
  bootStallMs?: number;
  /** Boots tried when the guest gets stuck, all within bootTimeoutMs. */
  bootAttempts?: number;
  /** The pod netns CNI set up: its interfaces are mirrored into the VM (src/sandbox/network). */
  netnsPath?: string;
  /** No Health.Check answered for this long: the sandbox is lost and its VM killed (0: never). */
  livenessTimeoutMs?: number;
  /** At most this long between two Health.Checks (agent.liveness_interval); default 10 s. */
  livenessIntervalMs?: number;
  /** The pod's sysctls (linux.sysctl of the sandbox spec), set in the guest before any container. */
  sysctls?: Record<string, string>;
  /** Take this VM booted ahead of the pod (src/pool) instead of booting one. */
  adopt?: VmAdopter;
  /**
   * The pod's cgroup dirs (cgroupfs, one per hierarchy): virtiofsd and the VMM start in them (placed
   * before they run, so their memory is charged there from the first page) and an adopted VM is
   * moved into them. Default: they inherit this process's cgroups, and an adopted VM is moved into
   * them (the per-pod shim has joined the pod's cgroup: src/shim/pod-cgroup.ts).
   */
  cgroupDirs?: string[];
  /** Times the set-up steps (the shim logs them: docs/pool.md "Where a pod start goes"). */
  clock?: StepClock;
  /** Cuts the set-up short (CANCELLED) at its next step, the boot included; what was set up is undone. */
  signal?: AbortSignal;
  /**
   * With `adopt`: create() returns once the VM is the pod's on the host (taken, in the pod's CPU
   * cgroup, attached, its agent connected); the pod network's host side and the guest's set-up
   * (CreateSandbox, UpdateNetwork) go on within this many ms, and createContainer waits for them.
   * A failure then makes the sandbox lost (docs/pool.md "Deferred adoption").
   */
  deferGuestSetUpMs?: number;
  /** With deferGuestSetUpMs: called once the deferred set-up ended (the error when it failed). */
  onGuestSetUp?: (err?: unknown) => void;
  /**
   * Under TCG, with a VM that can (QEMU with split-wx): give its translation cache back to the
   * host once it has been idle this long, ms ([hypervisor.qemu] tcg_idle_trim_s; tcg-idle-trimmer.ts).
   */
  tcgIdleTrim?: TcgIdleTrimmerOptions;
  /**
   * With tcgIdleTrim: before each trim the agent compresses its own cold memory into the guest's
   * zram swap ([hypervisor.qemu] tcg_idle_reclaim_agent; agent-idle-reclaim.ts).
   */
  idleReclaimAgent?: boolean;
}

/** Sandbox.reattach: the pod's id, its containers, and how it is watched from here on (as at create). */
export interface ReattachOptions extends Pick<SandboxOptions, "id" | "livenessTimeoutMs" | "livenessIntervalMs" | "tcgIdleTrim" | "idleReclaimAgent"> {
  /** Ids of the containers the caller knows; each must be in the pod's record (the agent has them). */
  containers: readonly string[];
  /** Deadline of the whole take-over (QMP, the agent connection, its Health.Check); default 10 s. */
  timeoutMs?: number;
}

const defaultReattachTimeoutMs = 10_000;

/** A VM up with its agent answering, booted or adopted, and what the guest is to be told. */
type GuestParts = { vm: Vm; agent: BootedVm["agent"]; net?: PodNetwork | Promise<PodNetwork | undefined>; guestNetwork?: GuestNetworkView; virtiofsd?: AdoptedHelperProcess };

export interface ContainerOptions {
  id: string;
  /** The container's OCI spec, as the host would give it to runc (root.path is ignored). */
  spec: OciSpec;
  /** Host directory holding the container's root file system. */
  rootfs: string;
  openStdin?: boolean;
  /** Join the PID namespace of the sandbox's own container (created first, with the sandbox's id). */
  sandboxPidns?: boolean;
}

const TABLE: Record<SandboxStatus, readonly SandboxStatus[]> = {
  creating: ["ready", "stopping"],
  ready: ["stopping"],
  stopping: ["stopped"],
  stopped: [],
};

/** Throws CANCELLED once the caller cut the set-up short; the caller's catch undoes what was done. */
function checkNotCancelled(signal: AbortSignal | undefined, id: string): void {
  if (signal?.aborted === true) throw new KataError("CANCELLED", `sandbox ${id}: set-up cancelled (the pod's start was cut off); what was set up is removed`);
}

export class Sandbox {
  private readonly life: Lifecycle<SandboxStatus>;
  private readonly containers = new Map<string, SandboxContainer>();
  private readonly undo = new UndoStack();
  private readonly record: SandboxRecord;
  private agentClient: AgentClient | undefined;
  private vmValue: Vm | undefined;
  private virtiofsd: Virtiofsd | undefined;
  /** An adopted VM's virtiofsd (started by the pool, not by this sandbox). */
  private adoptedVirtiofsd: AdoptedHelperProcess | undefined;
  private watch: PodWatch | undefined;
  private trimmer: TcgIdleTrimmer | undefined;
  private lossValue: SandboxLoss | undefined;
  private resolveLost!: (loss: SandboxLoss) => void;
  /** Resolves when the sandbox is lost while it runs (a part died or the guest wedged); never after destroy() began. */
  readonly lost = new Promise<SandboxLoss>((resolve) => (this.resolveLost = resolve));
  private destroying: Promise<void> | undefined;
  /** How container root filesystems reach the guest: the virtio-fs share, or block images (a VMM without virtio-fs). */
  private rootfsVia: "share" | "block" = "share";
  /** The VMM's configuration name, for messages. */
  private vmmName = "qemu";
  /** An adopted VM's guest set-up still running after create() returned (deferGuestSetUpMs). */
  private deferred: DeferredSetUp | undefined;

  private constructor(
    readonly id: string,
    readonly layout: SandboxLayout,
  ) {
    this.life = new Lifecycle(`sandbox ${id}`, "creating", TABLE);
    this.record = { id, status: "creating", createdAt: new Date().toISOString(), sharedDir: layout.sharedDir, containers: {} };
  }

  get state(): SandboxStatus {
    return this.life.state;
  }

  get agent(): AgentClient {
    if (this.agentClient === undefined) throw new KataError("FAILED_PRECONDITION", `sandbox ${this.id} has no agent connection`);
    return this.agentClient;
  }

  get vm(): Vm | undefined {
    return this.vmValue;
  }

  /** Trims of the VM's TCG cache done so far by the idle trimmer (undefined: none runs). */
  get tcgTrims(): number | undefined {
    return this.trimmer?.trims;
  }

  /** Why the sandbox was lost, once it was. */
  get loss(): SandboxLoss | undefined {
    return this.lossValue;
  }

  static async create(opts: SandboxOptions): Promise<Sandbox> {
    const layout = sandboxLayout(opts.id);
    // An adopted VM's share is already served by its virtiofsd: the sandbox uses it where it lands.
    const sb = new Sandbox(opts.id, opts.adopt === undefined ? layout : { ...layout, sharedDir: join(layout.stateDir, ADOPTED_VM_DIR, "shared") });
    try {
      await sb.setUp(opts);
    } catch (err) {
      await sb.destroy().catch((e: unknown) => log.error({ err: e, sandbox: opts.id }, "teardown after a failed create failed"));
      throw err;
    }
    return sb;
  }

  /**
   * A running pod taken over by a process that did not create it, from its state record (see
   * reattach.ts): its VM, agent and helpers watched again, the named containers known (a started
   * one with its init process), and destroy() tearing it all down as for a pod this process made.
   * Fails with NOT_FOUND (no record) or FAILED_PRECONDITION / UNAVAILABLE naming the pod and what
   * is missing, leaving the pod as it was (nothing opened stays open).
   */
  static async reattach(opts: ReattachOptions): Promise<Sandbox> {
    const layout = sandboxLayout(opts.id);
    const rec = await readRecord(layout.stateFile).catch((err: unknown) => {
      throw new KataError("NOT_FOUND", `pod ${opts.id} cannot be reattached: it has no sandbox state at ${layout.stateFile}`, { cause: err });
    });
    const parts = await takeOverVm(opts.id, reattachTarget(opts.id, rec, opts.containers), opts.timeoutMs ?? defaultReattachTimeoutMs);
    const sb = new Sandbox(opts.id, { ...layout, sharedDir: rec.sharedDir });
    Object.assign(sb.record, rec);
    try {
      pushTeardown(sb.undo, sb.layout, rec, parts);
      sb.attachGuest(opts, { vm: parts.vm, agent: parts.agent, ...(parts.virtiofsd === undefined ? {} : { virtiofsd: parts.virtiofsd }) });
      for (const id of opts.containers) {
        const c = rec.containers[id]!;
        const undo = new UndoStack();
        pushUnshare(undo, sb.layout, id);
        const running = c.status === "running" ? { initPid: c.pid ?? 0 } : undefined;
        sb.containers.set(id, SandboxContainer.reattach(sb.agent, id, c.terminal === true, undo, sb.containerHooks(), running));
      }
      sb.life.move("ready", "reattach");
    } catch (err) {
      // Let go of the pod as it was: no watch, no trim, no connection; QEMU and its files untouched.
      sb.watch?.stop();
      await sb.trimmer?.stop();
      parts.agent.close();
      parts.vm.detach();
      throw err;
    }
    log.info({ sandbox: opts.id, vmPid: rec.vmPid, containers: opts.containers }, "pod reattached");
    return sb;
  }

  private async setUp(opts: SandboxOptions): Promise<void> {
    const { layout } = this;
    const clock = opts.clock ?? new StepClock();
    // Booting needs a VMM that can bring container root filesystems into the guest (virtio-fs, or
    // block images), checked before anything is created; an adopted VM runs already.
    const booting = opts.adopt === undefined ? await this.bootPrerequisites(opts) : undefined;
    await mkdir(dirname(layout.stateDir), { recursive: true });
    try {
      await mkdir(layout.stateDir, { recursive: false });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code === "EEXIST" ? "ALREADY_EXISTS" : "INTERNAL";
      throw new KataError(code, `cannot create sandbox state dir ${layout.stateDir}`, { cause: err });
    }
    this.undo.push("remove state dir", () => rm(layout.stateDir, { recursive: true, force: true }));
    await this.save();

    if (booting === undefined) {
      // No cancellation check before adopting: a VM taken from the pool is the pod's to stop, and
      // only adoption (which pushes its undo steps) makes it so.
      if (opts.adopt === undefined) throw new KataError("INTERNAL", "neither booting nor adopting a VM");
      this.undo.push("unmount shared dir", () => unmountAll(layout.sharedDir));
      const parts = await this.adopt(opts.adopt, opts, clock);
      checkNotCancelled(opts.signal, opts.id);
      return this.finishSetUp(opts, parts, clock);
    }
    checkNotCancelled(opts.signal, opts.id);
    const { hypervisor, caps, assets } = booting;
    this.vmmName = caps.name;
    const blockSlots = caps.sharedFs === undefined ? caps.blockRootfs?.slots : undefined;
    if (blockSlots === undefined) {
      await mkdir(layout.sharedDir, { recursive: true });
      this.undo.push("unmount shared dir", () => unmountAll(layout.sharedDir));
      await makeSharedMountPoint(layout.sharedDir);
    } else {
      this.rootfsVia = "block";
      this.undo.push("remove container rootfs images", () => rm(sandboxImagesDir(opts.id), { recursive: true, force: true }));
    }

    const netnsPath = opts.netnsPath;
    const net = netnsPath === undefined ? undefined : await clock.time("network.host", () => attachPodNetwork(netnsPath, this.undo));
    if (net !== undefined) {
      // On disk before the next step: a shim killed from here on leaves a tap that `shim delete` must find.
      this.record.network = podNetworkRecord(net);
      await this.save();
    }
    checkNotCancelled(opts.signal, opts.id);
    // Resolved here without a prober: a pod boot never runs the KVM probe boot (`kata-ts check` does);
    // auto uses the cached probe answer, else TCG. A VMM without TCG runs under KVM or not at all.
    const accel = caps.accels.includes("tcg") ? await resolveAccel(opts.accel ?? "auto") : "kvm";
    const config: VmConfig = {
      id: opts.id,
      stateDir: layout.vmStateDir,
      vcpus: opts.vcpus ?? 1,
      memoryMiB: opts.memoryMiB ?? 512,
      kernelPath: assets.kernelPath,
      ...(assets.initrdPath === undefined ? {} : { initrdPath: assets.initrdPath }),
      rootfsPath: assets.rootfsPath,
      rootfsDevice: assets.rootfsDevice,
      kernelCmdline: assets.kernelCmdline,
      ...(assets.kernelTraits === undefined ? {} : { kernelTraits: assets.kernelTraits }),
      accel,
      ...(blockSlots === undefined ? { sharedFs: { socketPath: layout.virtiofsdSocket, tag: SHARED_FS_TAG } } : { blockSlots }),
      ...(net === undefined ? {} : { netDevices: net.netDevices, netnsPath: net.netnsPath }),
      ...(opts.cgroupDirs === undefined ? {} : { cgroupDirs: opts.cgroupDirs }),
    };
    const booted = await clock.time("boot", () => this.bootWithRetry(config, { ...opts, hypervisor }));
    const { vm } = booted;
    this.undo.push("stop VM", async () => {
      await vm.stop({ timeoutMs: 3000 });
    });
    checkNotCancelled(opts.signal, opts.id);
    await this.finishSetUp(opts, { vm, agent: booted.agent, ...(net === undefined ? {} : { net }) }, clock);
  }

  private async bootPrerequisites(opts: SandboxOptions): Promise<{ hypervisor: Hypervisor; caps: ReturnType<Hypervisor["capabilities"]>; assets: GuestAssets }> {
    const hypervisor = opts.hypervisor ?? (await defaultHypervisor());
    const caps = hypervisor.capabilities();
    if (caps.sharedFs === undefined && caps.blockRootfs === undefined) {
      throw new NoSharedFsError(caps.name, "run this pod", `nor can it take container root filesystems as block images; run the pod with hypervisor = "qemu" or "cloud-hypervisor"`);
    }
    return { hypervisor, caps, assets: opts.assets ?? (await loadGuestAssets()) };
  }

  /** A VM up with its agent answering, booted or adopted: the guest side of the pod from here on. */
  private async finishSetUp(opts: SandboxOptions, up: GuestParts, clock: StepClock): Promise<void> {
    const agent = this.attachGuest(opts, up);
    if (opts.adopt !== undefined && opts.deferGuestSetUpMs !== undefined) {
      // Reported created now; the guest's set-up goes on, and no container is created before it
      // is done (createContainer). Its failure makes the sandbox lost: the VM is stopped, so the
      // sandbox task exits and kubelet sees the pod not ready.
      const what = `the pooled VM (QEMU pid ${up.vm.pid ?? "?"})`;
      const work = this.configureGuest(opts, agent, up);
      const deferred = new DeferredSetUp(work, opts.deferGuestSetUpMs, (err) => {
        this.onLost({ cause: "setup", message: `adopting ${what} failed after the sandbox was reported started: ${describeError(err)}`, at: new Date() });
      });
      this.deferred = deferred;
      deferred.done.then(
        () => opts.onGuestSetUp?.(),
        (err: unknown) => opts.onGuestSetUp?.(err),
      );
      this.life.move("ready", "create");
      await clock.time("sandbox.save", () => this.save());
      return;
    }
    await this.configureGuest(opts, agent, up);
    checkNotCancelled(opts.signal, opts.id);
    this.life.move("ready", "create");
    await clock.time("sandbox.save", () => this.save());
  }

  /** The host's side of the guest: its VM, agent connection and watch. */
  private attachGuest(opts: Pick<SandboxOptions, "id" | "livenessTimeoutMs" | "livenessIntervalMs" | "tcgIdleTrim" | "idleReclaimAgent">, up: GuestParts): AgentClient {
    this.vmValue = up.vm;
    // For a process that takes the pod over (reattach.ts); saved with the sandbox's next state.
    this.record.vmm = this.vmmName;
    this.record.vmStateDir = up.vm.stateDir;
    if (up.vm.accel !== undefined) this.record.accel = up.vm.accel;
    const agent = new AgentClient(up.agent);
    this.agentClient = agent;
    this.undo.push("close agent connection", () => Promise.resolve(agent.close()));
    const livenessTimeoutMs = opts.livenessTimeoutMs ?? defaultLivenessTimeoutMs;
    // The booted VM's virtiofsd, or the adopted VM's (started by the pool, watched the same way).
    this.adoptedVirtiofsd = up.virtiofsd;
    const watchedVfs = up.virtiofsd ?? this.virtiofsd;
    const virtiofsd = watchedVfs === undefined ? {} : { virtiofsd: watchedVfs };
    const interval = opts.livenessIntervalMs === undefined ? {} : { checkIntervalMs: opts.livenessIntervalMs };
    this.watch = new PodWatch({ vm: up.vm, agent, livenessTimeoutMs, ...interval, ...virtiofsd }, (loss) => this.onLost(loss));
    // Only the pod's VM: a pooled VM is never a sandbox's before it is adopted.
    if (opts.tcgIdleTrim !== undefined && opts.tcgIdleTrim.idleWindowMs > 0 && up.vm.accel === "tcg" && canTrimTcgCache(up.vm)) {
      const reclaim = opts.idleReclaimAgent === true ? { beforeTrim: agentIdleReclaim(agent, opts.id) } : {};
      this.trimmer = new TcgIdleTrimmer(up.vm, { ...opts.tcgIdleTrim, ...reclaim });
    }
    return agent;
  }

  /** The guest made the pod's: CreateSandbox, the pod network (both sides). */
  private async configureGuest(opts: SandboxOptions, agent: AgentClient, up: GuestParts): Promise<void> {
    // Fresh host randomness first: a pooled VM booted before its pod (src/agent/entropy.ts).
    const entropy = new Uint8Array(randomBytes(64));
    const created = agent.createSandbox({ sandboxId: opts.id, hostname: opts.hostname ?? "", dns: opts.dns ?? [], sharedFsTag: this.rootfsVia === "share" ? SHARED_FS_TAG : "", entropy, sysctls: opts.sysctls ?? {} });
    // An adopted VM's network host side may still be being set up: CreateSandbox runs beside it,
    // and so does UpdateNetwork when the guest's view is known already (an adopted VM's: its NIC
    // reaches the pod only once the host side is done, which the sandbox awaits before it is ready).
    // Both settle before a failure is thrown (the network pushes undo steps until it settles).
    // The two guest calls go at once (the agent serves them concurrently; neither depends on the
    // other, and no pod code runs before both are done): their round trips overlap (docs/pool.md).
    const early = up.guestNetwork;
    const guestSide = early === undefined ? created : Promise.allSettled([created, configureGuestNetwork(agent, early)]).then(([c, n]) => {
      if (c.status === "rejected") throw c.reason;
      if (n.status === "rejected") throw n.reason;
    });
    const [guest, host] = await Promise.allSettled([guestSide, Promise.resolve(up.net)]);
    if (host.status === "rejected") throw host.reason;
    if (guest.status === "rejected") throw guest.reason;
    const net = host.value;
    if (net !== undefined) {
      // On disk before the next step: a shim killed from here on leaves a tap that `shim delete` must find.
      this.record.network = podNetworkRecord(net);
      await this.save();
      if (early === undefined) await configureGuestNetwork(agent, net);
    }
  }

  /**
   * Resolves once the guest is set up for the pod: at once, except while an adopted VM's deferred
   * set-up runs; rejects (UNAVAILABLE, naming the adoption) when that failed.
   */
  guestReady(): Promise<void> {
    return this.deferred?.done ?? Promise.resolve();
  }

  /** The adopter moves the VM in and pushes its own undo steps (stop VM included). */
  private async adopt(adopter: VmAdopter, opts: Pick<SandboxOptions, "netnsPath" | "cgroupDirs">, clock: StepClock): Promise<AdoptedVmParts> {
    const parts = await adopter({
      vmDir: join(this.layout.stateDir, ADOPTED_VM_DIR),
      clock,
      ...(opts.netnsPath === undefined ? {} : { netnsPath: opts.netnsPath }),
      ...(opts.cgroupDirs === undefined ? {} : { cgroupDirs: opts.cgroupDirs }),
      undo: this.undo,
      recordPids: async (p) => {
        this.record.vmPid = p.vmPid;
        this.record.virtiofsdPid = p.virtiofsdPid;
        this.record.virtiofsdPidFile = p.virtiofsdPidFile;
        this.record.agentSocketPath = p.agentSocketPath;
        await this.save();
      },
    });
    return parts;
  }

  /**
   * virtiofsd and the VM up to an answering agent, within one boot deadline. A guest that gets stuck
   * mid-boot (BootStalledError: its console went silent) is killed and booted again, with a new
   * virtiofsd (it exits when its VMM goes), while attempts and time remain.
   */
  private async bootWithRetry(config: VmConfig, opts: SandboxOptions): Promise<BootedVm> {
    const { layout } = this;
    const deadline = Date.now() + (opts.bootTimeoutMs ?? defaultBootTimeoutMs);
    const attempts = opts.bootAttempts ?? defaultBootAttempts;
    const stallMs = opts.bootStallMs === undefined ? defaultBootStallMs : opts.bootStallMs === 0 ? undefined : opts.bootStallMs;
    for (let attempt = 1; ; attempt++) {
      // No share, no virtiofsd (container root filesystems come as block images).
      const vfs = config.sharedFs === undefined ? undefined : await Virtiofsd.start({ sharedDir: layout.sharedDir, socketPath: layout.virtiofsdSocket, logPath: layout.virtiofsdLog, ...(config.cgroupDirs === undefined ? {} : { cgroupDirs: config.cgroupDirs }) });
      try {
        // On disk before the VMM starts: a shim killed from here on leaves a virtiofsd to find.
        this.record.virtiofsdPid = vfs?.pid;
        if (vfs !== undefined) await this.save();
        checkNotCancelled(opts.signal, opts.id);
        // bootVm stops the VM itself when the boot fails; only a booted VM joins the undo stack.
        const booted = await bootVm(config, {
          deadlineMs: Math.max(deadline - Date.now(), 1),
          ...(stallMs === undefined ? {} : { stallMs }),
          ...(opts.hypervisor === undefined ? {} : { hypervisor: opts.hypervisor }),
          ...(opts.signal === undefined ? {} : { signal: opts.signal }),
          // Recorded while the guest boots, so a crashed owner's VM is still found (stale.ts).
          onStarted: async (vm) => {
            this.record.vmPid = vm.pid;
            this.record.agentSocketPath = vm.agentSocketPath;
            await this.save();
          },
        });
        if (vfs !== undefined) this.undo.push("stop virtiofsd", () => vfs.stop());
        this.virtiofsd = vfs;
        return booted;
      } catch (err) {
        await vfs?.stop();
        const left = deadline - Date.now();
        if (!(err instanceof BootStalledError) || attempt >= attempts || left < minRetryMs) throw err;
        log.warn({ sandbox: this.id, attempt, attempts, err: err.message }, "the guest got stuck while booting; booting it again");
      }
    }
  }

  async createContainer(c: ContainerOptions): Promise<SandboxContainer> {
    this.requireLive();
    this.life.require("create a container in", "ready");
    if (this.containers.has(c.id)) throw new KataError("ALREADY_EXISTS", `sandbox ${this.id} already has a container ${c.id}`);
    const undo = new UndoStack();
    try {
      const guest = await this.containerRootfs(c, undo);
      // The host side above ran beside an adopted VM's deferred set-up; the guest hears of no
      // container before that set-up is done.
      await this.guestReady().catch((err: unknown) => {
        const loss = this.lossValue;
        const why = loss === undefined ? describeError(err) : loss.cause === "setup" ? loss.message : `adopting the pooled VM did not complete: ${loss.message}`;
        throw new KataError("UNAVAILABLE", `sandbox ${this.id}: its guest was never set up for the pod, so no container can be created in it (${c.id} was not): ${why}; the sandbox task has exited: remove the pod`, { cause: err });
      });
      this.requireLive();
      await this.agent.createContainer({ containerId: c.id, spec: guest.spec, rootfs: guest.guestRootfs, mounts: guest.mounts, files: guest.files, openStdin: c.openStdin ?? false, sandboxPidns: c.sandboxPidns ?? false });
    } catch (err) {
      await undo.unwind().catch(() => undefined);
      throw err;
    }
    const terminal = c.spec.process?.terminal === true;
    const ctr = new SandboxContainer(this.agent, c.id, terminal, undo, this.containerHooks());
    this.containers.set(c.id, ctr);
    this.record.containers[c.id] = { status: "created", hostRootfs: c.rootfs, terminal };
    await this.save();
    return ctr;
  }

  /** Keeps the record in step with a container: started (with its init's pid), deleted. */
  private containerHooks(): ContainerHooks {
    return {
      onDeleted: (id) => {
        this.containers.delete(id);
        delete this.record.containers[id];
        void this.save().catch(() => undefined);
      },
      onStarted: async (id, pid) => {
        const rec = this.record.containers[id];
        if (rec === undefined) return;
        rec.status = "running";
        rec.pid = pid;
        await this.save().catch((err: unknown) => log.warn({ err, container: id }, "recording a started container failed; a take-over of this pod would see it as created"));
      },
    };
  }

  /** The container's rootfs and host mounts brought to the guest: over the share, or as a block image. */
  private async containerRootfs(c: ContainerOptions, undo: UndoStack): Promise<{ spec: OciSpec; guestRootfs: string; mounts: GuestMountSpec[]; files: GuestFileSpec[] }> {
    if (this.rootfsVia === "share") return { ...(await shareContainer(this.layout, c.id, c.spec, c.rootfs, undo)), mounts: [], files: [] };
    const blocks = this.vmValue?.blocks;
    if (blocks === undefined) throw new KataError("INTERNAL", `sandbox ${this.id}: its VM has no block slots for container root filesystems`);
    return attachBlockContainer(this.vmmName, blocks, sandboxImagesDir(this.id), c.id, c.spec, c.rootfs, undo);
  }

  container(id: string): SandboxContainer {
    const c = this.containers.get(id);
    if (c === undefined) throw new KataError("NOT_FOUND", `sandbox ${this.id} has no container ${id}`);
    return c;
  }

  /** Deletes every container, stops the VM and helpers, removes mounts and the state dir. Idempotent. */
  destroy(): Promise<void> {
    // One teardown however many callers ask (Ctrl-C while run's own finally also destroys).
    this.destroying ??= this.tearDown();
    return this.destroying;
  }

  /** Throws UNAVAILABLE naming the cause once the sandbox is lost. */
  requireLive(): void {
    if (this.lossValue !== undefined) {
      throw new KataError("UNAVAILABLE", `sandbox ${this.id} is lost (${this.lossValue.message}); remove the pod`);
    }
  }

  private onLost(loss: SandboxLoss): void {
    if (this.destroying !== undefined || this.lossValue !== undefined) return;
    this.lossValue = loss;
    log.error({ sandbox: this.id, cause: loss.cause }, `sandbox lost: ${loss.message}; killing its VM`);
    this.resolveLost(loss);
    this.cutOff().catch((err: unknown) => log.error({ err, sandbox: this.id }, "killing the VM of a lost sandbox failed"));
  }

  /** Kills the VM and virtiofsd now; every agent call still waiting fails (UNAVAILABLE). Idempotent. */
  private async cutOff(): Promise<void> {
    this.watch?.stop();
    // Not waited on before the kill: a trim in flight only ends (its VM is going anyway).
    const trimmerStopped = this.trimmer?.stop();
    this.agentClient?.close();
    await Promise.all([this.vmValue?.stop({ timeoutMs: 500 }), this.virtiofsd?.stop(1000), this.adoptedVirtiofsd?.stop(), trimmerStopped]);
  }

  private async tearDown(): Promise<void> {
    this.life.move("stopping", "destroy");
    // No trim from here on; one in flight is cut short and the VM resumed before the guest is asked anything.
    await this.trimmer?.stop();
    await this.save().catch(() => undefined);
    // Containers' host-side shares are undone even when the agent cannot answer (a lost sandbox).
    const guest = (async () => {
      // A deferred set-up still running ends first (bounded by its own deadline): the guest is
      // not told to destroy a sandbox it is still creating.
      await this.deferred?.settled;
      for (const c of [...this.containers.values()]) {
        await c.delete().catch((err: unknown) => log.warn({ err, container: c.id }, "container delete failed; the VM stop removes it"));
      }
      if (this.agentClient !== undefined && this.lossValue === undefined) {
        await this.agentClient.destroySandbox().catch(() => undefined);
      }
    })();
    const late = await Promise.race([guest.then(() => false), sleep(guestTeardownMs, true, { ref: false })]);
    if (late) {
      log.warn({ sandbox: this.id }, `the guest did not remove its containers within ${guestTeardownMs / 1000} s; killing the VM`);
      await this.cutOff();
      await guest;
    }
    this.watch?.stop();
    // The deferred set-up's network host side pushes undo steps until it settles (after cutOff its
    // guest calls fail at once).
    await this.deferred?.settled;
    try {
      await this.undo.unwind();
    } finally {
      this.life.move("stopped", "destroy");
    }
  }

  private async save(): Promise<void> {
    this.record.status = this.life.state;
    await writeRecord(this.layout.stateFile, this.record);
  }
}
