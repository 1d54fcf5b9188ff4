// Charges a pod's whole VM to the pod's cgroup: before the sandbox layer starts virtiofsd and
// QEMU, the shim joins the sandbox spec's linux.cgroupsPath (kubelet's pod cgroup, sized with the
// RuntimeClass's PodOverhead, is its parent), so both inherit it; after the pod is destroyed the
// shim moves back and removes the cgroups it made. Wraps any PodFactory (see sandbox-adapter.ts).
import { cgroupfsPath, joinCgroup, removeCgroup, type JoinedCgroup } from "../sandbox/host-cgroup.js";
import { describeError } from "../util/errors.js";
import { KataError } from "../util/errors.js";
import type { Logger } from "../util/log.js";
import { readSpec } from "./oci-spec.js";
import { annotations } from "./pod-sizing.js";
import type { ContainerRequest, ExecRequest, Pod, PodFactory, PodProcess, SandboxRequest } from "./pod-port.js";

export function sandboxCgroupsPath(spec: SandboxRequest["spec"]): string {
  const linux = spec.linux as { cgroupsPath?: unknown } | undefined;
  return typeof linux?.cgroupsPath === "string" ? linux.cgroupsPath : "";
}

export function withPodCgroup(inner: PodFactory, log: Logger): PodFactory {
  return {
    async createPod(req: SandboxRequest): Promise<Pod> {
      const path = sandboxCgroupsPath(req.spec);
      const dir = cgroupfsPath(path);
      let joined: JoinedCgroup | undefined;
      if (dir !== undefined) {
        joined = await joinCgroup(dir);
        log.debug({ cgroupsPath: path, dirs: joined.dirs }, "shim joined the pod cgroup");
      } else if (path !== "") {
        log.warn({ cgroupsPath: path }, "cgroupsPath is neither a cgroupfs path nor slice:prefix:name; the VM stays in the shim's cgroup");
      }
      let pod: Pod;
      try {
        pod = await inner.createPod(req);
      } catch (err) {
        await joined?.release();
        throw err;
      }
      return joined === undefined ? pod : new PodInCgroup(pod, joined, log);
    },
    async cleanupPod(id: string): Promise<void> {
      // `shim delete` runs in the pod's bundle (containerd sets the cwd): a dead shim's pod cgroup
      // is named in its spec, read first (containerd may remove the bundle meanwhile). The VM's
      // processes are gone once the inner cleanup returns.
      const spec = await readSpec(process.cwd()).catch(() => undefined);
      await inner.cleanupPod(id);
      if (spec && spec.annotations?.[annotations.containerType] !== "container") await removeCgroup(sandboxCgroupsPath(spec));
    },
  };
}

/** A pod whose destroy also leaves and removes the cgroup (the VM's processes are gone by then). */
class PodInCgroup implements Pod {
  constructor(
    private readonly pod: Pod,
    private readonly cgroup: JoinedCgroup,
    private readonly log: Logger,
  ) {}

  get pid(): number {
    return this.pod.pid;
  }
  sandboxProcess(): PodProcess {
    return this.pod.sandboxProcess();
  }
  createContainer(req: ContainerRequest): Promise<PodProcess> {
    return this.pod.createContainer(req);
  }
  exec(req: ExecRequest): Promise<PodProcess> {
    return this.pod.exec(req);
  }
  removeContainer(id: string): Promise<void> {
    return this.pod.removeContainer(id);
  }
  pids(containerId: string): Promise<number[]> {
    return this.pod.pids(containerId);
  }
  async pause(containerId: string): Promise<void> {
    if (this.pod.pause === undefined) throw new KataError("UNIMPLEMENTED", "this pod cannot pause containers");
    await this.pod.pause(containerId);
  }
  async resume(containerId: string): Promise<void> {
    if (this.pod.resume === undefined) throw new KataError("UNIMPLEMENTED", "this pod cannot resume containers");
    await this.pod.resume(containerId);
  }
  stats(containerId: string): ReturnType<Pod["stats"]> {
    return this.pod.stats(containerId);
  }
  update(containerId: string, resources: Record<string, unknown>): Promise<void> {
    return this.pod.update(containerId, resources);
  }
  onOom(listener: (containerId: string) => void): void {
    this.pod.onOom(listener);
  }
  async destroy(): Promise<void> {
    try {
      await this.pod.destroy();
    } finally {
      await this.cgroup.release().catch((err: unknown) => this.log.warn({ err: describeError(err) }, "leaving the pod cgroup"));
    }
  }
}
