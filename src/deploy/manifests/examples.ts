// An example pair of pods: a trusted workload on the node's default runtime (runc, shares the host
// kernel) and an untrusted one in its own VM (runtimeClassName: kata-ts). Both print the kernel
// they run on, so `kubectl logs` shows the difference.
import { RUNTIME_CLASS_NAME } from "./runtime-class.js";

function pod(name: string, trust: string, runtimeClassName?: string) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "default", labels: { app: "kata-ts-example", trust } },
    spec: {
      ...(runtimeClassName ? { runtimeClassName } : {}),
      containers: [
        {
          name: "main",
          image: "busybox:1.36",
          command: ["sh", "-c", "echo kernel $(uname -r); sleep 3600"],
          resources: { requests: { cpu: "100m", memory: "64Mi" }, limits: { cpu: "500m", memory: "128Mi" } },
        },
      ],
    },
  };
}

export function examplePods() {
  return [pod("trusted-runc", "trusted"), pod("untrusted-kata-ts", "untrusted", RUNTIME_CLASS_NAME)];
}
