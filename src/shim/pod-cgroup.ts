// Charges a pod's whole VM to the pod's cgroup, the sandbox spec's linux.cgroupsPath (kubelet's pod
// cgroup, sized with the RuntimeClass's PodOverhead, is its parent). Two ways, each wrapping any
// PodFactory (see sandbox-adapter.ts):
// - withPodCgroup (the per-pod shim): before the sandbox layer starts virtiofsd and QEMU, the shim
//   joins the cgroup, so both inherit it; after the pod is destroyed the shim moves back and
//   removes the cgroups it made.
// - withPodCgroupForChildren (a process serving many pods): the cgroup is made and the caller
//   stays where it is; the sandbox layer starts virtiofsd and QEMU in the cgroup's dirs (placed
//   before they run: src/util/start-in-cgroups.ts) and moves an adopted VM into them; after the
//   pod is destroyed the cgroups made are removed.
// A reattached pod's VM is in its cgroup already (reattachInCgroup): nothing is joined or made;
// the pod cgroup is removed after the pod is destroyed, either way.
import { cgroupfsPath, joinCgroup, makeCgroup, removeCgroup } from "../sandbox/host-cgroup.js";
import { describeError } from "../util/errors.js";
import { KataError } from "../util/errors.js";
import type { Logger } from "../util/log.js";
import { readSpec } from "./oci-spec.js";
import { annotations } from "./pod-sizing.js";
import type { ContainerRequest, ExecRequest, Pod, PodFactory, PodProcess, ReattachProcessOptions, ReattachRequest, SandboxRequest } from "./pod-port.js";

export function sandboxCgroupsPath(spec: SandboxRequest["spec"]): string {
  const linux = spec.linux as { cgroupsPath?: unknown } | undefined;
  return typeof linux?.cgroupsPath === "string" ? linux.cgroupsPath : "";
}

/** The pod's cgroup as placed for one pod: what the inner factory is told, and how to undo it. */
interface Placed {
  req: SandboxRequest;
  release(): Promise<void>;
}

/** Place the pod's cgroup (`place` gets its cgroupfs path), create the pod, undo on failure. */
async function createInCgroup(inner: PodFactory, req: SandboxRequest, log: Logger, place: (dir: string) => Promise<Placed>): Promise<Pod> {
  const path = sandboxCgroupsPath(req.spec);
  const dir = cgroupfsPath(path);
  if (dir === undefined) {
    if (path !== "") log.warn({ cgroupsPath: path }, "cgroupsPath is neither a cgroupfs path nor slice:prefix:name; the VM stays in the caller's cgroup");
    return inner.createPod(req);
  }
  const placed = await place(dir);
  let pod: Pod;
  try {
    pod = await inner.createPod(placed.req);
  } catch (err) {
    await placed.release();
    throw err;
  }
  return new PodInCgroup(pod, placed.release, log);
}

export interface PodCgroupOptions {
  /**
   * The bundle dir of a sandbox, for cleanupPod: its config.json names the cgroup of a pod whose
   * process died. Default: the cwd (`shim delete` runs in the pod's bundle).
   */
  bundleOf?: (sandboxId: string) => string | undefined;
}

function cleanupInCgroup(inner: PodFactory, opts: PodCgroupOptions): PodFactory["cleanupPod"] {
  return async (id: string) => {
    // A dead owner's pod cgroup is named in the spec, read first (containerd may remove the
    // bundle meanwhile). The VM's processes are gone once the inner cleanup returns.
    const bundle = opts.bundleOf === undefined ? process.cwd() : opts.bundleOf(id);
    const spec = bundle === undefined ? undefined : await readSpec(bundle).catch(() => undefined);
    await inner.cleanupPod(id);
    if (spec && spec.annotations?.[annotations.containerType] !== "container") await removeCgroup(sandboxCgroupsPath(spec));
  };
}

/** The inner factory's reattachPod, the pod cgroup removed once the pod is destroyed (absent if the inner has none). */
function reattachInCgroup(inner: PodFactory, log: Logger): Pick<PodFactory, "reattachPod"> {
  const innerReattach = inner.reattachPod?.bind(inner);
  if (innerReattach === undefined) return {};
  return {
    async reattachPod(req: ReattachRequest): Promise<Pod> {
      const pod = await innerReattach(req);
      const path = sandboxCgroupsPath(req.spec);
      if (cgroupfsPath(path) === undefined) return pod;
      return new PodInCgroup(pod, () => removeCgroup(path), log);
    },
  };
}

/** The per-pod shim: it joins the pod's cgroup, and the pod's processes inherit it. */
export function withPodCgroup(inner: PodFactory, log: Logger): PodFactory {
  return {
    createPod: (req) =>
      createInCgroup(inner, req, log, async (dir) => {
        const joined = await joinCgroup(dir);
        log.debug({ cgroupsPath: dir, dirs: joined.dirs }, "shim joined the pod cgroup");
        return { req, release: () => joined.release() };
      }),
    ...reattachInCgroup(inner, log),
    cleanupPod: cleanupInCgroup(inner, {}),
  };
}

/** A pod's processes killed may take a moment to leave its cgroup; its removal waits this long. */
const removeBusyWaitMs = 2000;

/**
 * For a process serving many pods: the pod's cgroup is made (every hierarchy) and the caller stays
 * in its own; the pod's host processes start in the cgroup's dirs (SandboxRequest.cgroupDirs) and
 * an adopted VM is moved into them; destroy removes them.
 */
export function withPodCgroupForChildren(inner: PodFactory, log: Logger, opts: PodCgroupOptions = {}): PodFactory {
  return {
    createPod: (req) =>
      createInCgroup(inner, req, log, async (dir) => {
        const made = await makeCgroup(dir);
        log.debug({ cgroupsPath: dir, dirs: made.dirs }, "made the pod cgroup for the pod's processes");
        return { req: { ...req, cgroupDirs: made.dirs }, release: () => made.remove(removeBusyWaitMs) };
      }),
    ...reattachInCgroup(inner, log),
    cleanupPod: cleanupInCgroup(inner, opts),
  };
}

/** A pod whose destroy also releases its cgroup (the VM's processes are gone by then). */
class PodInCgroup implements Pod {
  constructor(
    private readonly pod: Pod,
    private readonly release: () => Promise<void>,
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
  async reattachProcess(containerId: string, execId: string, opts: ReattachProcessOptions): Promise<PodProcess> {
    if (this.pod.reattachProcess === undefined) throw new KataError("UNIMPLEMENTED", "this pod cannot reattach processes");
    return this.pod.reattachProcess(containerId, execId, opts);
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
      await this.release().catch((err: unknown) => this.log.warn({ err: describeError(err) }, "releasing the pod cgroup"));
    }
  }
}
