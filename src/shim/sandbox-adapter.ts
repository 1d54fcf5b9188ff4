// Which PodFactory the shim uses: the sandbox layer's VMs (vm-pod.ts), or - when
// KATA_TS_SHIM_POD_FACTORY names an ES module exporting `createPodFactory(): PodFactory` - that
// one; tests use it to drive the real shim from a real containerd with a pod of host processes.
import { pathToFileURL } from "node:url";
import { KataError } from "../util/errors.js";
import type { Logger } from "../util/log.js";
import type { PodFactory } from "./pod-port.js";
import { withPodCgroup } from "./pod-cgroup.js";
import { vmPodFactory } from "./vm-pod.js";

export async function loadPodFactory(log: Logger): Promise<PodFactory> {
  const override = process.env.KATA_TS_SHIM_POD_FACTORY;
  if (override !== undefined && override !== "") {
    const mod = (await import(pathToFileURL(override).href)) as { createPodFactory?: () => PodFactory };
    if (typeof mod.createPodFactory !== "function") {
      throw new KataError("INVALID_ARGUMENT", `KATA_TS_SHIM_POD_FACTORY=${override} does not export createPodFactory()`);
    }
    return mod.createPodFactory();
  }
  return withPodCgroup(vmPodFactory(log), log);
}
