// What the shim needs from the host-side sandbox layer, in the shim's own internal types (no
// generated protobuf types cross this line; translate.ts converts at the ttRPC edge). One
// implementation wraps src/sandbox (sandbox-adapter.ts); the shim itself never boots VMs.
import type { Readable, Writable } from "node:stream";
import type { KataConfig } from "../config/schema.js";
import type { GuestAssets } from "../guest/assets.js";
import type { PodSizing } from "./pod-sizing.js";

/** An OCI runtime spec (config.json) or process, as parsed JSON: the sandbox layer validates it. */
export type OciSpec = Record<string, unknown> & { annotations?: Record<string, string> };
export type OciProcess = Record<string, unknown>;

export interface RootfsMount {
  type: string;
  source: string;
  target: string;
  options: string[];
}

export interface StdioPaths {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

export interface ProcessExit {
  /** The exit code, or 128+signal. */
  exitStatus: number;
  exitedAt: Date;
}

/** A process in the pod (a container's init or an exec) after create, before or after start. */
export interface PodProcess {
  /** The pid containerd sees (a host pid where one exists, else the guest pid). */
  readonly pid: number;
  /** Streams for IO; absent ones are not connected. */
  readonly stdin?: Writable;
  readonly stdout?: Readable;
  readonly stderr?: Readable;
  start(): Promise<void>;
  signal(signal: number, all: boolean): Promise<void>;
  /** Resolves once, when the process has exited. Never rejects: a lost VM is an exit (137). */
  wait(): Promise<ProcessExit>;
  closeStdin(): Promise<void>;
  resizePty(width: number, height: number): Promise<void>;
}

export interface ContainerRequest {
  id: string;
  bundle: string;
  spec: OciSpec;
  rootfs: RootfsMount[];
  stdio: StdioPaths;
}

export interface ExecRequest {
  containerId: string;
  execId: string;
  process: OciProcess;
  stdio: StdioPaths;
}

/** cgroup-v2-like figures for one container; absent fields are unknown. */
export interface ContainerStats {
  cpuUsageUsec?: number;
  cpuUserUsec?: number;
  cpuSystemUsec?: number;
  memoryUsageBytes?: number;
  memoryLimitBytes?: number;
  pidsCurrent?: number;
  oomKills?: number;
}

/** The pod's VM and the containers in it. */
export interface Pod {
  /** Host pid that represents the pod (the VMM), for the sandbox task's pid. */
  readonly pid: number;
  /** The pause container: its process is the VM's lifetime. */
  sandboxProcess(): PodProcess;
  createContainer(req: ContainerRequest): Promise<PodProcess>;
  exec(req: ExecRequest): Promise<PodProcess>;
  removeContainer(id: string): Promise<void>;
  pids(containerId: string): Promise<number[]>;
  /** Freeze / thaw every process of a container; absent where the pod cannot. */
  pause?(containerId: string): Promise<void>;
  resume?(containerId: string): Promise<void>;
  stats(containerId: string): Promise<ContainerStats>;
  /** Linux resources as OCI JSON (spec.linux.resources). */
  update(containerId: string, resources: Record<string, unknown>): Promise<void>;
  /**
   * A process of a reattached pod that runs (or ran) in the guest: a container's init (execId "")
   * or an exec, already started (never start() it). Its output, wait, signal and resize work again.
   */
  reattachProcess?(containerId: string, execId: string, opts: ReattachProcessOptions): Promise<PodProcess>;
  /** Containers killed by the guest OOM killer, as they happen. */
  onOom(listener: (containerId: string) => void): void;
  /** Stop the VM and release everything on the host (helpers, mounts, state dir). Idempotent. */
  destroy(): Promise<void>;
}

export interface SandboxRequest {
  id: string;
  bundle: string;
  spec: OciSpec;
  rootfs: RootfsMount[];
  config: KataConfig;
  /** The file `config` came from ("built-in defaults" when none): what a pool daemon this pod starts reads too. */
  configSource?: string;
  /** The guest assets of `config`, when `start` read them already (pod-config.ts). */
  assets?: GuestAssets;
  sizing: PodSizing;
  /**
   * The pod's cgroup dirs (cgroupfs, one per hierarchy) its host processes (virtiofsd, the VMM)
   * start in and an adopted VM is moved into; set by withPodCgroupForChildren (pod-cgroup.ts).
   * Absent: they inherit the caller's cgroups (the per-pod shim has joined the pod's).
   */
  cgroupDirs?: string[];
  /**
   * Aborted when the pod's start is cut off (containerd deletes the task or the shim is told to
   * exit while the VM boots): the creation stops at the next step and undoes what it did.
   */
  signal?: AbortSignal;
}

/** A container of a pod being reattached: what the shim's side of it was. */
export interface ReattachContainer {
  id: string;
  bundle: string;
  /** The host dir its rootfs mounts are on (<bundle>/rootfs), unmounted at its removal; absent when containerd gave none. */
  rootfsDir?: string;
}

/**
 * A running pod to take over in a process that did not create it (a restarted node shim server):
 * the pod's sandbox request as it was (plain JSON: the caller keeps it), and its containers.
 * The sandbox container (id === `id`) is listed too when it runs in the guest (a pod sharing its
 * PID namespace). docs/shim.md "Reattaching a running pod".
 */
export interface ReattachRequest {
  id: string;
  bundle: string;
  spec: OciSpec;
  rootfs: RootfsMount[];
  config: KataConfig;
  /** The pod's sizing, as at create (its limits decide the containers' limits in the guest). */
  sizing?: PodSizing;
  containers: ReattachContainer[];
}

/** How a process of a reattached pod is connected: as it was when it was created. */
export interface ReattachProcessOptions {
  terminal: boolean;
  stdin: boolean;
}

/** Entry points into the sandbox layer. */
export interface PodFactory {
  createPod(req: SandboxRequest): Promise<Pod>;
  /**
   * A running pod, taken over from its persisted state without disturbing its VM (absent where the
   * pod cannot be). Fails, leaving the pod as it was, with NOT_FOUND (no such pod) or
   * FAILED_PRECONDITION / UNAVAILABLE naming what is gone (then clean it up with cleanupPod).
   */
  reattachPod?(req: ReattachRequest): Promise<Pod>;
  /** `shim delete`: clean up a pod from its persisted state when the shim is gone. Idempotent. */
  cleanupPod(sandboxId: string): Promise<void>;
}
