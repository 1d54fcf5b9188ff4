// The bridge from the shim's PodFactory port to the host-side sandbox layer (src/sandbox). Until
// that layer exports its entry points the shim runs without one: Create answers UNAVAILABLE and
// `delete` has nothing to clean beyond the bundle.
//
// KATA_TS_SHIM_POD_FACTORY names an ES module exporting `createPodFactory(): PodFactory`; tests
// use it to drive the real shim from a real containerd with a pod made of host processes.
import { pathToFileURL } from "node:url";
import { KataError } from "../util/errors.js";
import type { PodFactory } from "./pod-port.js";

export async function loadPodFactory(): Promise<PodFactory | undefined> {
  const override = process.env.KATA_TS_SHIM_POD_FACTORY;
  if (override !== undefined && override !== "") {
    const mod = (await import(pathToFileURL(override).href)) as { createPodFactory?: () => PodFactory };
    if (typeof mod.createPodFactory !== "function") {
      throw new KataError("INVALID_ARGUMENT", `KATA_TS_SHIM_POD_FACTORY=${override} does not export createPodFactory()`);
    }
    return mod.createPodFactory();
  }
  return undefined;
}
