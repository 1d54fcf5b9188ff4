// containerd-shim-kata-ts-v2 (runtime type io.containerd.kata-ts.v2): the shim with VM pods.
// bin/containerd-shim-kata-ts-v2 and the node installer's launcher import this file; `start`
// re-executes it as the `serve` action. The VM pod factory is fixed here, so an installed shim
// runs only its own code.
import { fileURLToPath } from "node:url";
import { runShim } from "./run.js";

void runShim(process.argv.slice(2), {
  serverScript: fileURLToPath(import.meta.url),
  // Loaded on demand: `start` and `delete` of a CRI app container never need the sandbox layer.
  loadPodFactory: async (log) => (await import("./sandbox-adapter.js")).vmPodFactoryWithCgroup(log),
  loadNodePodFactory: async (log) => (await import("./sandbox-adapter.js")).vmPodFactoryWithChildCgroups(log),
  // A warm server (before any pod) also reads the node's cgroup mounts, which the pod's cgroup join
  // and adoption need (host-cgroup.ts: read once per process, slow on a busy node).
  preloadPodFactory: () => Promise.all([import("./sandbox-adapter.js"), import("../sandbox/host-cgroup.js").then((m) => m.cgroupHierarchies()).catch(() => undefined)]),
});
