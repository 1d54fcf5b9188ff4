// The production shim's pods: the sandbox layer's VMs (vm-pod.ts), each in a pod cgroup of its own.
import type { Logger } from "../util/log.js";
import type { PodFactory } from "./pod-port.js";
import { withPodCgroup, withPodCgroupForChildren, type PodCgroupOptions } from "./pod-cgroup.js";
import { vmPodFactory, type PooledVmAdopter } from "./vm-pod.js";

/** The per-pod shim's: it joins each pod's cgroup, and the pod's VM inherits it. */
export function vmPodFactoryWithCgroup(log: Logger, adopter?: PooledVmAdopter): PodFactory {
  return withPodCgroup(vmPodFactory(log, adopter), log);
}

/** For a process serving many pods: it stays in its own cgroups; each pod's VM starts in the pod's. */
export function vmPodFactoryWithChildCgroups(log: Logger, adopter?: PooledVmAdopter, opts?: PodCgroupOptions): PodFactory {
  return withPodCgroupForChildren(vmPodFactory(log, adopter), log, opts);
}
