// RuntimeClass kata-ts: pods that name it run in a VM through the CRI handler `kata-ts`, are
// scheduled only on nodes the installer DaemonSet labelled, and are charged the measured VM
// overhead (PodOverhead: kubelet adds it to the pod cgroup's limits, the scheduler to requests).
import { NODE_LABEL_KEY, NODE_LABEL_VALUE } from "../node-install.js";
import { DEFAULT_HANDLER } from "../containerd-config.js";
import type { PodFixedOverhead } from "./overhead.js";

export const RUNTIME_CLASS_NAME = "kata-ts";

export function runtimeClass(overhead: PodFixedOverhead, handler = DEFAULT_HANDLER) {
  return {
    apiVersion: "node.k8s.io/v1",
    kind: "RuntimeClass",
    metadata: { name: RUNTIME_CLASS_NAME, labels: { "app.kubernetes.io/part-of": "kata-ts" } },
    handler,
    overhead: { podFixed: { memory: overhead.memory, cpu: overhead.cpu } },
    scheduling: { nodeSelector: { [NODE_LABEL_KEY]: NODE_LABEL_VALUE } },
  };
}
