// How tests put the host-pod shim (host-pod-shim.ts) under a private containerd: its own runtime
// type, whose binary name startContainerd's `shims` writes onto containerd's PATH, and for CRI a
// `kata-ts` handler (the name test/e2e/kata-pod-flow.ts drives) of that runtime type.
import { join } from "node:path";
import { DEFAULT_POD_ANNOTATIONS } from "../../src/deploy/containerd-config.js";
import { defaultRuntimes, type RuntimeHandlerConfig } from "./containerd-config.js";
import type { StartContainerdOptions } from "./containerd.js";

export const HOST_POD_RUNTIME_TYPE = "io.containerd.kata-ts-hostpod.v2";

/**
 * startContainerd options for the host-pod shim only: the production kata-ts handler and shim are
 * left out, so nothing can reach a VM by mistake.
 */
export function hostPodContainerd(): StartContainerdOptions {
  // The handler table the node installer writes (src/deploy/containerd-config.ts), but of our type.
  const kataTs: RuntimeHandlerConfig = {
    runtime_type: HOST_POD_RUNTIME_TYPE,
    privileged_without_host_devices: true,
    pod_annotations: DEFAULT_POD_ANNOTATIONS,
    container_annotations: [],
  };
  return {
    kataTs: false,
    runtimes: { ...defaultRuntimes, "kata-ts": kataTs },
    shims: { [HOST_POD_RUNTIME_TYPE]: join(import.meta.dirname, "host-pod-shim.js") },
  };
}
