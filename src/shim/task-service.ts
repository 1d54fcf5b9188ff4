// The containerd task API in the shim's internal types: a pod (one VM) and the containers in it.
// The first container that is not a CRI app container creates the pod: a CRI sandbox (pause)
// container, whose task is the VM itself, or a plain `ctr run` container, which both owns the pod
// and runs in it. CRI app containers join the existing pod. translate.ts maps protobuf to these calls.
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { selectedVmmConfig } from "../config/defaults.js";
import { describeError, KataError } from "../util/errors.js";
import type { Logger } from "../util/log.js";
import type { ContainerStats, OciProcess, OciSpec, Pod, PodFactory, PodProcess, ProcessExit, RootfsMount, StdioPaths } from "./pod-port.js";
import { OomFilter } from "./oom-events.js";
import { hostLimits } from "../host/limits.js";
import { annotations, podSizing } from "./pod-sizing.js";
import type { ProcessStatus } from "./process-state.js";
import { readSpec } from "./oci-spec.js";
import { podConfig, type PreparedPodConfig } from "./pod-config.js";
import { ShimProcess } from "./shim-process.js";
import type { FifoHolder } from "./fifo-io.js";
import type { EventSink } from "./task-events.js";

export interface CreateTask {
  id: string;
  bundle: string;
  rootfs: RootfsMount[];
  stdio: StdioPaths;
  /** runtimeoptions ConfigPath from CreateTaskRequest.options ("" if none). */
  configPath: string;
}

export interface ExecTask {
  containerId: string;
  execId: string;
  process: OciProcess;
  stdio: StdioPaths;
}

export interface TaskRef {
  containerId: string;
  /** "" for the container's init process. */
  execId: string;
}

export interface TaskInfo {
  containerId: string;
  execId: string;
  bundle: string;
  pid: number;
  status: ProcessStatus;
  stdio: StdioPaths;
  exit: ProcessExit | undefined;
}

export interface ProcessSnapshot {
  execId: string;
  stdio: StdioPaths;
  pid: number;
  status: ProcessStatus;
  exit?: { exitStatus: number; exitedAt: string };
}

/** TaskService.snapshot(): JSON-safe. */
export interface TaskSnapshot {
  version: 1;
  containers: Array<{ id: string; bundle: string; rootfs: RootfsMount[]; ownsPod: boolean; init: ProcessSnapshot; execs: ProcessSnapshot[] }>;
  /** Tasks whose Create was running: a server that takes this record over cannot finish or answer it. */
  creating?: string[];
}

interface ShimContainer {
  id: string;
  bundle: string;
  rootfs: RootfsMount[];
  /** The pod was created for this container: deleting it destroys the VM. */
  ownsPod: boolean;
  init: ShimProcess;
  execs: Map<string, ShimProcess>;
  /** While Create runs: aborting it cuts the creation short; `settled` resolves once it undid its work. */
  creation?: { abort: AbortController; settled: Promise<void> };
}

/** How long an exit waits for the guest's OOM kill count before it is reported anyway. */
const oomCheckMs = 3000;

export interface TaskServiceDeps {
  /** A promise while the server still loads it (serve.ts: after its socket listens). */
  factory: PodFactory | Promise<PodFactory> | undefined;
  events: EventSink;
  log: Logger;
  /** ConfigPath that `start` received on stdin, used when Create carries none. */
  configPath: string;
  /** The configuration `start` validated for the server (pod-config.ts); loaded at Create without it. */
  prepared?: Promise<PreparedPodConfig | undefined>;
  /** Called after the tasks changed (created, started, exited, deleted): the node-level server records snapshot() then. */
  onStateChange?: () => void;
  /** Holds the processes' output FIFOs beside this process (the node-level server's keeper: fifo-io.ts). */
  fifoHolder?: FifoHolder;
}

export class TaskService {
  private readonly containers = new Map<string, ShimContainer>();
  private pod: Pod | undefined;
  /** The pod's teardown once one started (destroyPod). */
  private podTeardown: Promise<void> = Promise.resolve();
  private oomFilter: OomFilter | undefined;
  /** A Shutdown that came while a cut-off creation was still undoing its work: honoured once it has. */
  private shutdownWhenEmpty: (() => void) | undefined;
  /** When the shim last held no task (its start, or the last task's removal); undefined while it holds some. */
  private emptySince: number | undefined = Date.now();

  constructor(private readonly deps: TaskServiceDeps) {}

  get containerCount(): number {
    return this.containers.size;
  }

  /** How long the shim has held no task at all (0 while it holds one). */
  get idleEmptyMs(): number {
    return this.emptySince === undefined ? 0 : Date.now() - this.emptySince;
  }

  async create(req: CreateTask): Promise<number> {
    if (this.containers.has(req.id)) throw new KataError("ALREADY_EXISTS", `task ${req.id} already exists in this shim`);
    const spec = await readSpec(req.bundle);
    const type = spec.annotations?.[annotations.containerType];
    const proc = new ShimProcess(req.id, "", req.stdio, this.deps.log, this.deps.fifoHolder);
    const abort = new AbortController();
    let settle!: () => void;
    const container: ShimContainer = { id: req.id, bundle: req.bundle, rootfs: req.rootfs, ownsPod: false, init: proc, execs: new Map(), creation: { abort, settled: new Promise((r) => (settle = r)) } };
    this.containers.set(req.id, container);
    this.emptySince = undefined;
    // Recorded before the VM or the container exists (snapshot's `creating`).
    this.changed();
    // Set once the pod holds the app container: undone if a later step fails.
    let appContainerCreated = false;
    try {
      if (type !== "container") {
        await this.createPod(req, spec, abort.signal);
        container.ownsPod = true;
      }
      const pod = this.requirePod(req.id);
      let handle: PodProcess;
      if (type === "sandbox") handle = pod.sandboxProcess();
      else {
        handle = await pod.createContainer({ id: req.id, bundle: req.bundle, spec, rootfs: req.rootfs, stdio: req.stdio });
        appContainerCreated = true;
      }
      if (abort.signal.aborted) throw new KataError("CANCELLED", `task ${req.id}: deleted while it was being created; what was created is removed`);
      await proc.attach(handle, (exit) => this.exited(proc, exit), (exit) => this.oomBeforeExit(proc, exit));
    } catch (err) {
      this.containers.delete(req.id);
      if (container.ownsPod) await this.destroyPod();
      else if (appContainerCreated) {
        await this.pod?.removeContainer(req.id).catch((e: unknown) => this.deps.log.warn({ err: describeError(e), container: req.id }, "removing a container whose creation failed"));
      }
      throw err;
    } finally {
      container.creation = undefined;
      settle();
      this.shutdownIfEmpty();
      this.changed();
    }
    this.deps.events.publish({ topic: "/tasks/create", containerId: req.id, bundle: req.bundle, rootfs: req.rootfs, io: req.stdio, pid: proc.pid });
    return proc.pid;
  }

  async start(ref: TaskRef): Promise<number> {
    const proc = this.process(ref);
    const t0 = performance.now();
    const startedAt = Date.now();
    await proc.start(() => {
      if (ref.execId === "") this.deps.events.publish({ topic: "/tasks/start", containerId: ref.containerId, pid: proc.pid });
      else this.deps.events.publish({ topic: "/tasks/exec-started", containerId: ref.containerId, execId: ref.execId, pid: proc.pid });
    });
    if (ref.execId === "") this.deps.log.info({ container: ref.containerId, startedAt, ms: Math.round(performance.now() - t0) }, "task started");
    this.changed();
    return proc.pid;
  }

  async exec(req: ExecTask): Promise<void> {
    const container = this.container(req.containerId);
    if (container.execs.has(req.execId)) throw new KataError("ALREADY_EXISTS", `exec ${req.execId} already exists in task ${req.containerId}`);
    container.init.state.check("io"); // only a live container can run an exec
    const proc = new ShimProcess(req.containerId, req.execId, req.stdio, this.deps.log, this.deps.fifoHolder);
    container.execs.set(req.execId, proc);
    try {
      const handle = await this.requirePod(req.containerId).exec(req);
      await proc.attach(handle, (exit) => this.exited(proc, exit));
    } catch (err) {
      container.execs.delete(req.execId);
      throw err;
    }
    this.deps.events.publish({ topic: "/tasks/exec-added", containerId: req.containerId, execId: req.execId });
    this.changed();
  }

  async kill(ref: TaskRef, signal: number, all: boolean): Promise<void> {
    await this.process(ref).signal(signal, all);
  }

  async wait(ref: TaskRef): Promise<ProcessExit> {
    return this.process(ref).exited;
  }

  async delete(ref: TaskRef): Promise<{ pid: number; exit: ProcessExit }> {
    let container = this.container(ref.containerId);
    if (ref.execId === "" && container.creation !== undefined) {
      // containerd gave up on the Create (its caller's deadline, a cancelled RunPodSandbox) and
      // deletes the task: cut the creation short (a booting VM is stopped) and answer once what it
      // set up is gone. NOT_FOUND is what containerd expects of a task that never came to be.
      this.deps.log.warn({ container: ref.containerId }, "task deleted while being created: cutting the creation short");
      container.creation.abort.abort();
      await container.creation.settled;
      const still = this.containers.get(ref.containerId);
      if (still === undefined) throw new KataError("NOT_FOUND", `task ${ref.containerId} was deleted while being created; its creation was cut short and undone`);
      container = still; // created just before the abort was seen: delete it as any other
    }
    const proc = this.process(ref);
    if (ref.execId !== "") {
      const exit = await proc.delete();
      container.execs.delete(ref.execId);
      this.changed();
      return { pid: proc.pid, exit };
    }
    const exit = await proc.delete();
    for (const exec of container.execs.values()) await exec.delete().catch(() => undefined);
    this.containers.delete(ref.containerId);
    try {
      if (container.ownsPod) {
        await this.destroyPod();
      } else {
        await this.pod?.removeContainer(ref.containerId);
      }
      this.deps.events.publish({ topic: "/tasks/delete", containerId: ref.containerId, id: ref.containerId, pid: proc.pid, exitStatus: exit.exitStatus, exitedAt: exit.exitedAt });
    } finally {
      // Also when the teardown failed: the task is gone either way, and containerd sends no
      // Shutdown after a Delete that failed, so an emptied shim must still see that it is empty
      // (its idle exit) or it stays forever (it did: the pod's netns went mid-teardown).
      this.shutdownIfEmpty();
      this.changed();
    }
    return { pid: proc.pid, exit };
  }

  state(ref: TaskRef): TaskInfo {
    const container = this.container(ref.containerId);
    const proc = this.process(ref);
    return { containerId: ref.containerId, execId: ref.execId, bundle: container.bundle, pid: proc.pid, status: proc.status, stdio: proc.stdio, exit: proc.exitInfo };
  }

  async pids(containerId: string): Promise<number[]> {
    const container = this.container(containerId);
    if (this.pod === undefined || container.init.status === "stopped") return container.init.pid > 0 ? [container.init.pid] : [];
    return this.pod.pids(containerId);
  }

  /** Freezes the container's processes (its init's state says paused until resume). */
  async pause(containerId: string): Promise<void> {
    const container = this.container(containerId);
    container.init.state.check("pause");
    const pod = this.requirePod(containerId);
    if (pod.pause === undefined) throw new KataError("UNIMPLEMENTED", "this pod cannot pause containers");
    await pod.pause(containerId);
    container.init.state.apply("pause");
    this.changed();
    this.deps.events.publish({ topic: "/tasks/paused", containerId });
  }

  async resume(containerId: string): Promise<void> {
    const container = this.container(containerId);
    container.init.state.check("resume");
    const pod = this.requirePod(containerId);
    if (pod.resume === undefined) throw new KataError("UNIMPLEMENTED", "this pod cannot resume containers");
    await pod.resume(containerId);
    container.init.state.apply("resume");
    this.changed();
    this.deps.events.publish({ topic: "/tasks/resumed", containerId });
  }

  async closeIO(ref: TaskRef, stdin: boolean): Promise<void> {
    if (stdin) await this.process(ref).closeStdin();
  }

  async resizePty(ref: TaskRef, width: number, height: number): Promise<void> {
    await this.process(ref).resizePty(width, height);
  }

  async update(containerId: string, resources: Record<string, unknown>): Promise<void> {
    this.container(containerId).init.state.check("io");
    await this.requirePod(containerId).update(containerId, resources);
  }

  async stats(containerId: string): Promise<ContainerStats> {
    this.container(containerId);
    return this.requirePod(containerId).stats(containerId);
  }

  /**
   * The tasks as plain data: what a node-level server that took this one's place needs to serve
   * them again (restore). Creations still running are only named: their Create never answered.
   */
  snapshot(): TaskSnapshot {
    const proc = (p: ShimProcess): ProcessSnapshot => ({
      execId: p.execId,
      stdio: p.stdio,
      pid: p.pid,
      status: p.status,
      ...(p.exitInfo === undefined ? {} : { exit: { exitStatus: p.exitInfo.exitStatus, exitedAt: p.exitInfo.exitedAt.toISOString() } }),
    });
    const containers = [...this.containers.values()]
      .filter((c) => c.creation === undefined)
      .map((c) => ({ id: c.id, bundle: c.bundle, rootfs: c.rootfs, ownsPod: c.ownsPod, init: proc(c.init), execs: [...c.execs.values()].map(proc) }));
    const creating = [...this.containers.values()].filter((c) => c.creation !== undefined).map((c) => c.id);
    return { version: 1, containers, ...(creating.length > 0 ? { creating } : {}) };
  }

  /**
   * Serves the tasks a node-level server that died recorded (snapshot()): the pod's VM is taken
   * over as it runs (PodFactory.reattachPod), each live process again has its output copied to its
   * FIFOs and its exit reported; exits that happened meanwhile are reported now.
   */
  async restore(raw: unknown): Promise<void> {
    const snap = raw as Partial<TaskSnapshot> | undefined;
    if (snap?.version !== 1 || !Array.isArray(snap.containers)) throw new KataError("INVALID_ARGUMENT", "the recorded tasks are not a snapshot this build understands");
    if (this.containers.size > 0 || this.pod !== undefined) throw new KataError("FAILED_PRECONDITION", "this pod's server holds tasks already");
    // A Create cut short by the server's death: containerd waits for an answer no server can give,
    // and what it made is half made. The pod is given up as a per-pod shim's death gives it up:
    // its connections close and containerd's cleanup (`shim delete`) removes what the record names.
    if (Array.isArray(snap.creating) && snap.creating.length > 0) {
      throw new KataError("FAILED_PRECONDITION", `the server that exited was creating task(s) ${snap.creating.join(", ")}: that Create can get no answer, so the pod is given up for containerd to clean up`);
    }
    const owner = snap.containers.find((c) => c.ownsPod);
    if (owner !== undefined) {
      const factory = await this.deps.factory;
      if (factory?.reattachPod === undefined) throw new KataError("UNIMPLEMENTED", "this kata-ts build cannot take a running pod over");
      const spec = await readSpec(owner.bundle);
      const { config, source } = await podConfig(this.deps.configPath, this.deps.prepared);
      const sizing = podSizing(selectedVmmConfig(config), spec.annotations ?? {}, await hostLimits(), source, config.runtime.hypervisor);
      const pod = await factory.reattachPod({
        id: owner.id,
        bundle: owner.bundle,
        spec,
        rootfs: owner.rootfs,
        config,
        sizing,
        // The CRI sandbox task is the VM itself (the pod reads from its record whether its pause
        // container runs in the guest); every other container runs there.
        containers: snap.containers
          .filter((c) => c !== owner || spec.annotations?.[annotations.containerType] !== "sandbox")
          .map((c) => ({ id: c.id, bundle: c.bundle, ...(c.rootfs.length > 0 ? { rootfsDir: join(c.bundle, "rootfs") } : {}) })),
      });
      this.adoptPod(pod);
    }
    for (const c of snap.containers) {
      const init = new ShimProcess(c.id, "", c.init.stdio, this.deps.log, this.deps.fifoHolder);
      const container: ShimContainer = { id: c.id, bundle: c.bundle, rootfs: c.rootfs, ownsPod: c.ownsPod, init, execs: new Map() };
      this.containers.set(c.id, container);
      const isSandboxTask = c.ownsPod && (await readSpec(c.bundle).catch(() => undefined))?.annotations?.[annotations.containerType] === "sandbox";
      await init.restore(c.init, await this.livingProcess(c.id, c.init, isSandboxTask), (exit) => this.exited(init, exit), (exit) => this.oomBeforeExit(init, exit));
      for (const e of c.execs) {
        const exec = new ShimProcess(c.id, e.execId, e.stdio, this.deps.log, this.deps.fifoHolder);
        container.execs.set(e.execId, exec);
        await exec.restore(e, await this.livingProcess(c.id, e, false), (exit) => this.exited(exec, exit));
      }
    }
    if (this.containers.size > 0) this.emptySince = undefined;
    this.deps.log.info({ containers: snap.containers.map((c) => ({ id: c.id, status: c.init.status, execs: c.execs.length })) }, "took the pod's tasks over");
  }

  /** The pod's handle on a recorded process that had not exited; undefined when the pod has none. */
  private async livingProcess(containerId: string, snap: ProcessSnapshot, isSandboxTask: boolean): Promise<PodProcess | undefined> {
    if (snap.exit !== undefined || this.pod === undefined) return undefined;
    // The pod counts its sandbox task started already (PodFactory.reattachPod).
    if (isSandboxTask) return this.pod.sandboxProcess();
    // A process created and never started cannot be taken over (its start was the dead server's):
    // it counts as gone, and a Start of it fails.
    if (this.pod.reattachProcess === undefined || snap.status === "created") return undefined;
    return this.pod.reattachProcess(containerId, snap.execId, { terminal: snap.stdio.terminal, stdin: snap.stdio.stdin !== "" }).catch((err: unknown) => {
      this.deps.log.warn({ err: describeError(err), container: containerId, exec: snap.execId }, "cannot take the process over: it counts as gone");
      return undefined;
    });
  }

  /** The pid containerd should watch for this container's task (0 when unknown). */
  taskPid(containerId: string): number {
    return this.containers.get(containerId)?.init.pid ?? this.pod?.pid ?? 0;
  }

  /**
   * containerd's Shutdown: `exit` now when no task is left. A Shutdown that comes while a creation
   * that was cut off still undoes its work (containerd waits 5 s for the Delete that cut it off,
   * then shuts the shim down anyway) is honoured once it has: no idle shim stays behind.
   */
  requestShutdown(exit: () => void): void {
    if (this.containers.size === 0) exit();
    else if ([...this.containers.values()].some((c) => c.creation?.abort.signal.aborted === true)) this.shutdownWhenEmpty = exit;
  }

  /** On shim exit: nothing must outlive the shim, a pod still being created included. */
  async close(): Promise<void> {
    const creating = [...this.containers.values()].flatMap((c) => (c.creation === undefined ? [] : [c.creation]));
    for (const c of creating) c.abort.abort();
    await Promise.all(creating.map((c) => c.settled));
    await this.destroyPod();
  }

  private shutdownIfEmpty(): void {
    if (this.containers.size === 0) this.emptySince ??= Date.now();
    const exit = this.shutdownWhenEmpty;
    if (exit === undefined || this.containers.size > 0) return;
    this.shutdownWhenEmpty = undefined;
    exit();
  }

  private async createPod(req: CreateTask, spec: OciSpec, signal: AbortSignal): Promise<void> {
    if (this.pod !== undefined) throw new KataError("ALREADY_EXISTS", `this shim already runs a pod; task ${req.id} cannot start another`);
    const factory = await this.deps.factory;
    if (factory === undefined) throw new KataError("UNAVAILABLE", "this kata-ts build has no sandbox layer: cannot create a pod VM");
    const { config, source, assets, from } = await podConfig(req.configPath || this.deps.configPath, this.deps.prepared);
    // The file may ask for more logging than containerd's -debug flag gave.
    if (config.runtime.debug) this.deps.log.level = "debug";
    else if (config.runtime.log_level !== "info") this.deps.log.level = config.runtime.log_level;
    const sizing = podSizing(selectedVmmConfig(config), spec.annotations ?? {}, await hostLimits(), source, config.runtime.hypervisor);
    if (sizing.vcpusCapped !== undefined) this.deps.log.warn({ id: req.id }, sizing.vcpusCapped);
    this.deps.log.info({ id: req.id, config: source, configFrom: from, sizing }, "creating pod VM");
    const pod = await factory.createPod({ id: req.id, bundle: req.bundle, spec, rootfs: req.rootfs, config, configSource: source, ...(assets === undefined ? {} : { assets }), sizing, signal });
    if (signal.aborted) {
      // Cut off just as the pod came up: it is nobody's, so it goes now.
      await pod.destroy();
      throw new KataError("CANCELLED", `pod ${req.id}: its start was cut off; the pod is removed`);
    }
    this.adoptPod(pod);
  }

  private adoptPod(pod: Pod): void {
    this.pod = pod;
    // The ids come from the guest: only containers of this shim, at most one event per window each.
    const oom = new OomFilter((id) => this.containers.has(id), this.deps.log);
    this.oomFilter = oom;
    pod.onOom((containerId) => {
      if (oom.accept(containerId)) this.deps.events.publish({ topic: "/tasks/oom", containerId });
    });
  }

  /**
   * containerd's CRI plugin marks a container OOMKilled only if /tasks/oom arrives before its exit.
   * The guest notices OOM kills by polling, so a container killed by the OOM killer can exit
   * before its OOM event is pulled: for a container killed by SIGKILL, ask the guest for the
   * container's OOM kill count first (its cgroup lives until the container is removed).
   */
  private async oomBeforeExit(proc: ShimProcess, exit: ProcessExit): Promise<void> {
    const pod = this.pod;
    const filter = this.oomFilter;
    if (proc.execId !== "" || exit.exitStatus !== 137 || pod === undefined || filter === undefined) return;
    const stats = await Promise.race([pod.stats(proc.containerId), sleep(oomCheckMs, undefined, { ref: false }).then(() => undefined)]);
    if ((stats?.oomKills ?? 0) > 0 && filter.accept(proc.containerId)) this.deps.events.publish({ topic: "/tasks/oom", containerId: proc.containerId });
  }

  /**
   * One teardown of the pod, whoever asks first; every later caller waits for that same teardown.
   * The shim's exit (close) must not cut short a teardown a Delete started: containerd may give
   * up waiting on a slow Delete, delete again (NOT_FOUND: the task is gone already) and send
   * Shutdown, and a shim that exited then left the pod's mounts and state dir behind.
   */
  private destroyPod(): Promise<void> {
    const pod = this.pod;
    this.pod = undefined;
    if (pod !== undefined) this.podTeardown = pod.destroy();
    return this.podTeardown;
  }

  private changed(): void {
    this.deps.onStateChange?.();
  }

  private exited(proc: ShimProcess, exit: ProcessExit): void {
    this.changed();
    this.deps.events.publish({
      topic: "/tasks/exit",
      containerId: proc.containerId,
      id: proc.execId === "" ? proc.containerId : proc.execId,
      pid: proc.pid,
      exitStatus: exit.exitStatus,
      exitedAt: exit.exitedAt,
    });
  }

  private requirePod(containerId: string): Pod {
    if (this.pod === undefined) throw new KataError("FAILED_PRECONDITION", `task ${containerId}: its pod's sandbox is not running in this shim`);
    return this.pod;
  }

  private container(id: string): ShimContainer {
    const c = this.containers.get(id);
    if (c === undefined) throw new KataError("NOT_FOUND", `task ${id} not found in this shim`);
    return c;
  }

  private process(ref: TaskRef): ShimProcess {
    const c = this.container(ref.containerId);
    if (ref.execId === "") return c.init;
    const p = c.execs.get(ref.execId);
    if (p === undefined) throw new KataError("NOT_FOUND", `exec ${ref.execId} not found in task ${ref.containerId}`);
    return p;
  }
}
