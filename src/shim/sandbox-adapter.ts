// The bridge from the shim's PodFactory port to the host-side sandbox layer (src/sandbox). Until
// that layer exports its entry points, the shim runs without one: Create answers UNAVAILABLE and
// `delete` has nothing to clean beyond the bundle.
import type { PodFactory } from "./pod-port.js";

export async function loadPodFactory(): Promise<PodFactory | undefined> {
  return undefined;
}
