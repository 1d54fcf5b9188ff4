// Named network namespaces for tests (`ip netns`), with loopback up so services inside (the CRI
// stream server on 127.0.0.1) work.
import { run, tryRun } from "../../src/util/exec.js";

export const NETNS_DIR = "/var/run/netns";

export async function createNetns(name: string): Promise<string> {
  await run("ip", ["netns", "add", name], { timeoutMs: 10_000 });
  try {
    await run("ip", ["-n", name, "link", "set", "lo", "up"], { timeoutMs: 10_000 });
  } catch (err) {
    await deleteNetns(name);
    throw err;
  }
  return `${NETNS_DIR}/${name}`;
}

/** Remove a named netns; devices inside (bridges, veth ends) go with it. Absent is fine. */
export async function deleteNetns(name: string): Promise<void> {
  await tryRun("ip", ["netns", "delete", name], { timeoutMs: 10_000 });
}
