// The production shim's pods: the sandbox layer's VMs (vm-pod.ts), each in a pod cgroup of its own.
import type { Logger } from "../util/log.js";
import type { PodFactory } from "./pod-port.js";
import { withPodCgroup } from "./pod-cgroup.js";
import { vmPodFactory, type PooledVmAdopter } from "./vm-pod.js";

export function vmPodFactoryWithCgroup(log: Logger, adopter?: PooledVmAdopter): PodFactory {
  return withPodCgroup(vmPodFactory(log, adopter), log);
}

/** The node-level server's pods (node-server/server.ts): one process serves them all, so none is joined. */
export function vmPodFactoryForNodeServer(log: Logger, adopter?: PooledVmAdopter): PodFactory {
  return vmPodFactory(log, adopter);
}
