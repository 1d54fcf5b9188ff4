// The narrow contract between kata-ts and a VMM. QEMU implements it today; Cloud Hypervisor and
// Firecracker (REST over a unix socket) must fit later, so nothing here is QEMU-shaped: a VM is
// created from a plain config, started, stopped and waited on. Optional features are described by
// small capability interfaces instead of one wide type.

import type { AgentEndpoint } from "./agent-channel/endpoint.js";

export type Accel = "auto" | "kvm" | "tcg";
/** The accelerator actually used once `auto` is resolved. */
export type ResolvedAccel = "kvm" | "tcg";

/**
 * What the VMM may rely on about the guest's kernel when it adds kernel parameters of its own (from
 * the assets' manifest; absent for a kernel nothing is known about, e.g. an older manifest).
 */
export interface GuestKernelTraits {
  /** CONFIG_HZ: the kernel's jiffies per second. */
  hz: number;
  /** Parameters this kernel takes beyond upstream 6.1's (its patches' `Adds-Parameter:`), e.g. "lapic_timer_period". */
  addedParams: string[];
  /** Boots without ACPI: finds the CPUs and the IO-APIC in the MP table, panics through pvpanic-pci. */
  bootsWithoutAcpi: boolean;
}

/** A virtio-fs share served by a vhost-user daemon (virtiofsd) listening on socketPath. */
export interface SharedFsConfig {
  socketPath: string;
  /** The mount tag the guest uses: `mount -t virtiofs TAG DIR`. */
  tag: string;
}

/** A virtio-net NIC backed by a host tap device (created by the caller, e.g. in the pod netns). */
export interface NetDeviceConfig {
  tapName: string;
  /** 6 colon-separated hex octets, e.g. "02:00:00:00:00:01". */
  mac: string;
}

export interface VmConfig {
  /** Short unique name (sandbox id); used in QEMU's -name and in logs. */
  id: string;
  /** Directory the VM owns (sockets, console log, pid file); created by start, removed by stop. */
  stateDir: string;
  vcpus: number;
  memoryMiB: number;
  kernelPath: string;
  initrdPath?: string;
  /** The guest's root image, attached read-only (see rootfsDevice). */
  rootfsPath: string;
  /**
   * How the root image is attached: "virtio-blk" (the guest sees /dev/vda; default) or
   * "virtio-pmem" (/dev/pmem0, mapped from the host's page cache; the guest mounts it with DAX).
   */
  rootfsDevice?: "virtio-blk" | "virtio-pmem";
  /** Guest kernel parameters the image needs; the VMM adds its own (console=..., panic=...). */
  kernelCmdline: string[];
  /** What the guest's kernel can take (the assets' manifest); without it the VMM adds only what every kernel takes. */
  kernelTraits?: GuestKernelTraits;
  accel: Accel;
  sharedFs?: SharedFsConfig;
  netDevices?: NetDeviceConfig[];
  /**
   * Network namespace (a path, e.g. the pod's /var/run/netns/cni-...) to start the VMM in, so it
   * can open the taps of netDevices that live there. Default: the caller's.
   */
  netnsPath?: string;
  /**
   * cgroupfs directories (one per hierarchy) the VMM process starts in: it is placed there before
   * it runs (src/util/start-in-cgroups.ts), so all it allocates is charged there. Default: it
   * inherits the caller's cgroups.
   */
  cgroupDirs?: string[];
  /**
   * Block devices to reserve at start for images attached while the VM runs (`Vm.blocks`), for a
   * VMM that cannot hotplug them (Firecracker boots with this many placeholders). Default 0.
   */
  blockSlots?: number;
}

/** created -> running -> stopping -> stopped. Any state may go straight to stopped (failure). */
export type VmState = "created" | "starting" | "running" | "stopping" | "stopped";

/** How a VM ended, as far as the host can tell. */
export interface VmExit {
  /**
   * - "poweroff": the guest shut itself down (or honoured an ACPI power-down request)
   * - "guest-panic": the guest kernel panicked (pvpanic, or a reboot with panic=-1 under -no-reboot)
   * - "stopped": the host asked the VMM to quit and it did so cleanly
   * - "killed": the host had to kill the VMM process
   * - "crashed": the VMM died on its own (signal or non-zero exit without a guest shutdown)
   */
  reason: "poweroff" | "guest-panic" | "stopped" | "killed" | "crashed";
  /** The VMM process's exit code (null when killed by a signal). */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** The VMM's own account when it has one (QEMU: SHUTDOWN event's reason, e.g. "guest-shutdown"). */
  vmmReason?: string;
  /** The last few KiB of the guest console, kept when the state dir is removed (for diagnostics). */
  consoleTail?: string;
}

export interface StopOptions {
  /** Time for a graceful stop before the VMM is killed. */
  timeoutMs?: number;
}

/** An image pointed at by one of a running VM's block devices. */
export interface AttachedBlock {
  /** The driver's name for the device (Firecracker: its drive id). */
  slot: string;
  /** The device node the guest sees, e.g. /dev/vdb. */
  guestDevice: string;
  /** The image's size: the guest's device has it once the guest kernel took the update. */
  sizeBytes: number;
}

/** Block devices of a running VM that can be pointed at host images (read-only) and back. */
export interface BlockAttach {
  /** Points a free reserved device at `imagePath`; RESOURCE_EXHAUSTED when every one is in use. */
  attach(imagePath: string): Promise<AttachedBlock>;
  /** Points the device back at its placeholder (the guest must have stopped using it); idempotent. */
  detach(slot: string): Promise<void>;
}

export interface Vm {
  readonly id: string;
  readonly state: VmState;
  /** The VMM process id while it runs. */
  readonly pid: number | undefined;
  readonly stateDir: string;
  /** Guest console output (serial), for diagnostics. */
  readonly consoleLogPath: string;
  /** The host end of the agent channel (a unix socket for every VMM kata-ts drives), for records and cleanup. */
  readonly agentSocketPath: string;
  /** How to reach the guest agent: dial it with dialAgent (agent-channel/dial.ts). */
  readonly agentEndpoint: AgentEndpoint;
  /** The accelerator in use (known after start). */
  readonly accel: ResolvedAccel | undefined;
  /** Present when the VM was created with blockSlots (and the VMM supports them). */
  readonly blocks?: BlockAttach;
  start(): Promise<void>;
  /** Graceful within the deadline, then kill; always reaps the VMM and removes the state dir. Idempotent. */
  stop(opts?: StopOptions): Promise<VmExit>;
  /** Resolves once the VM has ended (for whatever reason) and its VMM has been reaped. */
  wait(): Promise<VmExit>;
}

// ---- capabilities: one small interface per feature ----

/** What a trim of a VM's TCG translation cache freed: the cache's resident bytes before and after. */
export interface TcgTrimResult {
  beforeBytes: number;
  afterBytes: number;
}

/**
 * A VM whose TCG translation cache can be emptied and its memory given back to the host while it
 * idles (QEMU under TCG with split-wx: src/hypervisor/qemu/tcg-trim.ts). FAILED_PRECONDITION when
 * this VM cannot (KVM, or started without split-wx).
 */
export interface TcgCacheTrimmable {
  /** `signal` cuts a trim short: the VM is resumed and the call rejects (CANCELLED). */
  trimTcgCache(timeoutMs: number, signal?: AbortSignal): Promise<TcgTrimResult>;
}

export function canTrimTcgCache(vm: Vm): vm is Vm & TcgCacheTrimmable {
  return typeof (vm as Partial<TcgCacheTrimmable>).trimTcgCache === "function";
}

export interface AgentChannelCapability {
  /** How the host reaches the agent: a virtio-serial port on a unix socket, hybrid vsock (a unix socket + CONNECT), or kernel vsock. */
  transport: "virtio-serial" | "hybrid-vsock" | "vsock";
}

export interface SharedFsCapability {
  kind: "virtio-fs";
  /** DAX window (virtio-fs cache=always mapped into guest memory). */
  dax: boolean;
  /** virtiofsd needs guest RAM in a shareable memfd. */
  requiresSharedMemory: boolean;
}

export interface NetworkCapability {
  kind: "tap";
  maxDevices: number;
}

export interface SeccompCapability {
  /** The VMM runs under its own seccomp filter. */
  enabled: boolean;
  detail: string;
}

/** A read-only image mapped into guest memory (virtio-pmem): page cache shared by every VM, DAX in the guest. */
export interface PmemCapability {
  kind: "virtio-pmem";
}

/**
 * Container root filesystems as block devices attached while the VM runs: for a VMM without
 * virtio-fs. The VM boots with `slots` placeholder devices (Firecracker cannot hotplug drives).
 */
export interface BlockRootfsCapability {
  kind: "placeholder-drives";
  /** Devices reserved per VM: at most this many containers at once in a pod. */
  slots: number;
}

export interface HypervisorCapabilities {
  /** The configuration name: "qemu", "cloud-hypervisor", "firecracker". */
  name: string;
  version: string;
  /** Accelerators the VMM can run guests with; only QEMU has TCG (software emulation). */
  accels: readonly ResolvedAccel[];
  agentChannel: AgentChannelCapability;
  /** Absent: the VMM has no virtio-fs, so container root filesystems and volumes cannot be shared that way. */
  sharedFs?: SharedFsCapability;
  pmem?: PmemCapability;
  /** Absent: container root filesystems reach the guest only through sharedFs. */
  blockRootfs?: BlockRootfsCapability;
  network?: NetworkCapability;
  seccomp?: SeccompCapability;
}

export interface Hypervisor {
  /** Validates the config and prepares a VM; nothing is spawned until start(). */
  create(config: VmConfig): Promise<Vm>;
  capabilities(): HypervisorCapabilities;
}
