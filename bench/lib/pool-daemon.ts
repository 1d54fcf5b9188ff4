// The node's VM pool as the benches see it: which processes are the pool's (node-level: charged to
// no pod, the same at 1 pod or 100) and stopping the daemon the first shim started.
import { readFile } from "node:fs/promises";
import { POOL_CGROUP, POOL_VMS_CGROUP } from "../../src/pool/priority.js";
import { foundPoolDaemon, poolPathsOf } from "../../test/e2e/pool-fixture.js";
import type { PrivateContainerd } from "../../test/harness/containerd.js";

/**
 * Whether `pid` is one of the pool's own processes: its daemon, a ready VM's QEMU or virtiofsd, a
 * warm shim server. They live in the pool's cgroups (docs/pool.md "Who runs the pool"); an adopted
 * VM or a warm server that took a pod has left them for its pod's.
 */
export async function inPoolCgroup(pid: number): Promise<boolean> {
  const text = await readFile(`/proc/${pid}/cgroup`, "utf8").catch(() => "");
  const lines = text.split("\n").map((l) => l.split(":"));
  const v1 = lines.find((f) => f[1]?.split(",").includes("memory"));
  const v2 = lines.find((f) => f[0] === "0" && f[1] === "");
  const path = (v1 ?? v2)?.slice(2).join(":") ?? "";
  return [POOL_CGROUP, POOL_VMS_CGROUP].some((c) => path === `/${c}` || path.startsWith(`/${c}/`));
}

/** SIGTERM to the pool daemon the first shim started (it destroys its pooled VMs), if there is one. */
export async function stopPoolDaemon(ctd: PrivateContainerd): Promise<void> {
  const daemon = await foundPoolDaemon(poolPathsOf(ctd), 1000).catch(() => undefined);
  if (daemon === undefined) return;
  process.kill(daemon.pid, "SIGTERM");
  await Promise.race([daemon.exited, new Promise((r) => setTimeout(r, 60_000))]);
}
