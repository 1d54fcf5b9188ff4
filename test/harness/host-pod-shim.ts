// The test shim containerd-shim-kata-ts-hostpod-v2 (runtime type io.containerd.kata-ts-hostpod.v2):
// the real shim - start, its re-exec as `serve`, delete, the Task service - with a pod of host
// processes (host-pod.ts). Only test/harness puts it on a private containerd's PATH
// (host-pod-runtime.ts); the installed shim cannot load it.
import { fileURLToPath } from "node:url";
import { runShim } from "../../src/shim/run.js";
import { hostPodFactory } from "./host-pod.js";

void runShim(process.argv.slice(2), {
  serverScript: fileURLToPath(import.meta.url),
  loadPodFactory: async () => hostPodFactory(),
});
