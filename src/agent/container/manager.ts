// The agent's containers: create/start/remove, exec, signals, waits, stdio, stats, updates and
// OOM events, with the agent's own types. The ttRPC service (service.ts) translates the agent
// proto into these calls at the edge.
import { mkdir, rm, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KataError } from "../../util/errors.js";
import { crunDelete, crunKill, crunPause, crunUpdate, runArgv, type CrunConfig } from "../oci/crun.js";
import { checkProcess, parseSpec, toGuestSpec } from "../oci/guest-spec.js";
import type { OciProcess } from "../../protocol/contract/oci.js";
import { CONTAINERS_CGROUP } from "../../protocol/contract/guest.js";
import { cgroupPids, readStats, type ContainerStats } from "./cgroup-stats.js";
import { Container, type ContainerState } from "./container.js";
import { OomWatcher } from "./oom-watcher.js";
import { PodTmpfs } from "./pod-tmpfs.js";
import { SharePins, sharedPaths, type SharePinConfig } from "./share-pins.js";
import { startTimeoutMs, withinStartTime } from "./stuck-start.js";
import { ContainerProcess, type ExitInfo, type ProcessTools } from "./process.js";
import type { ReadResult } from "./output-buffer.js";

export interface ManagerConfig {
  crun: CrunConfig;
  tools: ProcessTools;
  /** Where guest-side bundles live (a guest-local tmpfs). */
  bundleRoot: string;
  /** Mounted cgroup v2 root; ignored when crun's cgroup manager is "disabled". */
  cgroupRoot: string;
  /** Guest directories containers may bind-mount from (the shared fs). */
  bindSourceRoots: string[];
  /** Where memory-backed emptyDir volumes are mounted (pod-tmpfs.ts); also a bind source root. */
  podTmpfsRoot?: string;
  /** Block root filesystems and their copied-in files (guest-files.ts): also a bind source root, never pinned. */
  blockRoot?: string;
  /** The kernel log read for bug reports when crun is stuck (the guest's /dev/kmsg); undefined: none. */
  kernelLog?: string;
  /** Hold each container's virtio-fs submounts in the agent's namespace (share-pins.ts); undefined: off. */
  sharePins?: SharePinConfig;
}

export interface CreateContainerInput {
  containerId: string;
  /** The host's config.json as JSON; the agent rewrites it for the guest (see oci/guest-spec.ts). */
  specJson: string;
  /** Guest path of the container's rootfs. */
  rootfs: string;
  openStdin: boolean;
  /** Join the PID namespace of the container named `sandboxId` (the pod's pause container). */
  sandboxPidns: boolean;
  sandboxId?: string | undefined;
}

export interface ExecInput {
  containerId: string;
  execId: string;
  process: OciProcess;
  terminal: boolean;
  openStdin: boolean;
  /** The caller's deadline (Date.now() scale): a stuck crun is given up on before it. */
  deadline?: number | undefined;
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const MAX_READ = 1024 * 1024;

export class ContainerManager {
  private readonly containers = new Map<string, Container>();
  private readonly oom = new OomWatcher();
  private readonly podTmpfs: PodTmpfs | undefined;
  private readonly pins: SharePins | undefined;

  constructor(private readonly cfg: ManagerConfig) {
    this.podTmpfs = cfg.podTmpfsRoot === undefined ? undefined : new PodTmpfs(cfg.podTmpfsRoot);
    this.pins = cfg.sharePins === undefined ? undefined : new SharePins(cfg.sharePins);
  }

  private get cgroupsOn(): boolean {
    return this.cfg.crun.cgroupManager !== "disabled";
  }

  get(containerId: string): Container {
    const c = this.containers.get(containerId);
    if (c === undefined) throw new KataError("NOT_FOUND", `no container ${JSON.stringify(containerId)} in this sandbox`);
    return c;
  }

  getContainerState(containerId: string): ContainerState {
    return this.get(containerId).state;
  }

  ids(): string[] {
    return [...this.containers.keys()];
  }

  async createContainer(input: CreateContainerInput): Promise<{ pid: number }> {
    const id = input.containerId;
    if (!ID_RE.test(id)) throw new KataError("INVALID_ARGUMENT", `container id ${JSON.stringify(id)} must match ${ID_RE.source}`);
    if (this.containers.has(id)) throw new KataError("ALREADY_EXISTS", `container ${id} already exists`);
    // The container's own cgroup sits under a per-container parent the agent owns: crun removes
    // the leaf when the container exits, and the parent's (hierarchical) memory.events still
    // shows an OOM kill that ended the container.
    const parent = `${CONTAINERS_CGROUP}/${id}`;
    const hostSpec = parseSpec(input.specJson);
    await this.podTmpfs?.prepare(hostSpec);
    const { spec } = toGuestSpec(hostSpec, {
      containerId: id,
      rootfs: input.rootfs,
      bindSourceRoots: [...this.cfg.bindSourceRoots, ...[this.cfg.podTmpfsRoot, this.cfg.blockRoot].filter((r): r is string => r !== undefined)],
      sandboxPidnsPath: input.sandboxPidns ? this.sandboxPidnsPath(input.sandboxId) : undefined,
      cgroupsPath: `${parent}/ctr`,
    });
    const bundleDir = join(this.cfg.bundleRoot, id);
    await mkdir(bundleDir, { recursive: true });
    await writeFile(join(bundleDir, "config.json"), JSON.stringify(spec));
    let cgroupDir: string | undefined;
    if (this.cgroupsOn) {
      cgroupDir = join(this.cfg.cgroupRoot, parent);
      await mkdir(cgroupDir, { recursive: true });
    }
    const init = new ContainerProcess({
      containerId: id,
      execId: "",
      argv: runArgv(this.cfg.crun, id, bundleDir, join(bundleDir, "init.pid"), join(bundleDir, "crun.log")),
      pidFile: join(bundleDir, "init.pid"),
      logFile: join(bundleDir, "crun.log"),
      terminal: spec.process?.terminal === true,
      openStdin: input.openStdin,
      tools: this.cfg.tools,
      kernelLog: this.cfg.kernelLog,
    });
    const c = new Container({ id, bundleDir, spec, init, crun: this.cfg.crun, tools: this.cfg.tools, cgroupDir, kernelLog: this.cfg.kernelLog });
    this.containers.set(id, c);
    return { pid: 0 };
  }

  /** The pod's PID namespace: the one of its pause container, which must be running. */
  private sandboxPidnsPath(sandboxId: string | undefined): string {
    const pause = sandboxId === undefined ? undefined : this.containers.get(sandboxId);
    if (pause === undefined || pause.state !== "running") {
      throw new KataError(
        "FAILED_PRECONDITION",
        `cannot share the pod's PID namespace: the pod's sandbox container ${JSON.stringify(sandboxId ?? "")} is not running in the guest (create and start it first)`,
      );
    }
    return `/proc/${pause.init.pid}/ns/pid`;
  }

  /**
   * Runs the container's init process (`crun run`); answers its guest pid. With the caller's
   * `deadline`, a crun stuck before the container exists is killed, and reported, before it.
   */
  async startContainer(containerId: string, deadline?: number): Promise<{ pid: number }> {
    const c = this.get(containerId);
    if (c.cgroupDir !== undefined) this.oom.watch(containerId, c.cgroupDir);
    if (this.pins !== undefined) {
      const pinning = this.pins.pin(containerId, sharedPaths(c.spec, this.cfg.bindSourceRoots));
      await withinStartTime(pinning, startTimeoutMs(undefined, deadline), `container ${containerId}`, this.cfg.kernelLog);
    }
    const pid = await c.init.start(deadline);
    return { pid };
  }

  async removeContainer(containerId: string, force: boolean): Promise<void> {
    const c = this.get(containerId);
    const live = c.allProcesses().filter((p) => p.state === "running");
    if (live.length > 0 && !force) {
      throw new KataError("FAILED_PRECONDITION", `container ${containerId} is still running: stop it first or remove with force`);
    }
    for (const p of live) {
      try {
        p.signal(9);
      } catch {
        // already gone between the check and the kill
      }
    }
    if (c.init.state === "created") c.init.signal(9);
    const timeout = AbortSignal.timeout(30_000);
    await Promise.all(c.allProcesses().map((p) => p.wait(timeout)));
    await crunDelete(this.cfg.crun, containerId);
    // In the background: it waits for the share to be idle (see share-pins.ts).
    void this.pins?.release(containerId).catch(() => undefined);
    await this.oom.unwatch(containerId);
    if (c.cgroupDir !== undefined) await rmdir(c.cgroupDir).catch(() => undefined);
    await rm(c.bundleDir, { recursive: true, force: true });
    this.containers.delete(containerId);
  }

  async execProcess(input: ExecInput): Promise<{ pid: number }> {
    const proc = { ...checkProcess(input.process), terminal: input.terminal };
    delete proc.apparmorProfile;
    delete proc.selinuxLabel;
    const p = await this.get(input.containerId).exec(input.execId, proc, input.openStdin, input.deadline);
    return { pid: p.pid };
  }

  async signalProcess(containerId: string, execId: string, signal: number, all: boolean): Promise<void> {
    const c = this.get(containerId);
    const p = c.process(execId);
    if (all && p === c.init && c.state === "running") {
      await crunKill(this.cfg.crun, containerId, signal, true);
      return;
    }
    await p.signalOrHold(signal);
  }

  waitProcess(containerId: string, execId: string, signal?: AbortSignal): Promise<ExitInfo> {
    return this.get(containerId).process(execId).wait(signal);
  }

  readStdout(containerId: string, execId: string, len: number, signal?: AbortSignal): Promise<ReadResult> {
    return this.get(containerId).process(execId).stdout.read(clampRead(len), signal);
  }

  readStderr(containerId: string, execId: string, len: number, signal?: AbortSignal): Promise<ReadResult> {
    return this.get(containerId).process(execId).stderr.read(clampRead(len), signal);
  }

  writeStdin(containerId: string, execId: string, data: Uint8Array): Promise<number> {
    return this.get(containerId).process(execId).writeStdin(data);
  }

  closeStdin(containerId: string, execId: string): void {
    this.get(containerId).process(execId).closeStdin();
  }

  resize(containerId: string, execId: string, rows: number, cols: number): Promise<void> {
    return this.get(containerId).process(execId).resize(rows, cols);
  }

  async stats(containerId: string): Promise<ContainerStats> {
    const c = this.get(containerId);
    if (c.cgroupDir === undefined) throw new KataError("FAILED_PRECONDITION", "cgroups are disabled in this agent: no stats");
    // The leaf while the container runs (it carries the limits); the parent's totals after.
    const leaf = join(c.cgroupDir, "ctr");
    const stats = await readStats(c.state === "running" ? leaf : c.cgroupDir);
    return stats;
  }

  /** Freezes every process of a running container (crun pause: the cgroup v2 freezer). */
  async pauseContainer(containerId: string): Promise<void> {
    const c = this.get(containerId);
    if (c.state !== "running") throw new KataError("FAILED_PRECONDITION", `cannot pause container ${containerId}: it is ${c.state}`);
    await crunPause(this.cfg.crun, containerId, "pause");
  }

  async resumeContainer(containerId: string): Promise<void> {
    const c = this.get(containerId);
    if (c.state !== "running") throw new KataError("FAILED_PRECONDITION", `cannot resume container ${containerId}: it is ${c.state}`);
    await crunPause(this.cfg.crun, containerId, "resume");
  }

  /** Guest pids of the container's processes: the members of its cgroup (init and execs alike). */
  async listProcesses(containerId: string): Promise<number[]> {
    const c = this.get(containerId);
    if (c.state !== "running") return [];
    if (c.cgroupDir === undefined) return c.allProcesses().filter((p) => p.state === "running" && p.pid > 0).map((p) => p.pid);
    return cgroupPids(join(c.cgroupDir, "ctr"));
  }

  async updateContainer(containerId: string, resourcesJson: string): Promise<void> {
    const c = this.get(containerId);
    if (c.state !== "running") throw new KataError("FAILED_PRECONDITION", `cannot update container ${containerId}: it is ${c.state}`);
    try {
      JSON.parse(resourcesJson);
    } catch (err) {
      throw new KataError("INVALID_ARGUMENT", "resources must be OCI LinuxResources as JSON", { cause: err });
    }
    const file = join(c.bundleDir, "update.json");
    await writeFile(file, resourcesJson);
    await crunUpdate(this.cfg.crun, containerId, file);
  }

  nextOomEvent(signal?: AbortSignal): Promise<string> {
    return this.oom.next(signal);
  }

  /** Kills and removes every container (DestroySandbox, agent shutdown). */
  async removeAll(): Promise<void> {
    for (const id of this.ids()) await this.removeContainer(id, true);
    await this.pins?.releaseAll();
    this.oom.stop();
  }
}

function clampRead(len: number): number {
  return len <= 0 || len > MAX_READ ? MAX_READ : len;
}
