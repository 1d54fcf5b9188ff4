// Stopping the node's pool daemon (`kata-ts pool stop`, and whoever ran a private containerd with
// the pool on): ask it over its socket, else SIGTERM the pid it wrote; wait until it is gone. It
// destroys its pooled VMs; adopted VMs are their pods' and keep running.
import { setTimeout as sleep } from "node:timers/promises";
import { KataError } from "../util/errors.js";
import { poolPaths, type PoolPaths } from "./layout.js";
import { poolCall } from "./protocol.js";
import { poolPid } from "./server.js";

/** Resolves "stopped" once the daemon is gone, "none" if none ran; throws DEADLINE_EXCEEDED. */
export async function stopPool(paths: PoolPaths = poolPaths(), timeoutMs = 60_000): Promise<"stopped" | "none"> {
  const pid = await poolPid(paths);
  const asked = await poolCall(paths.socket, { op: "stop" }).catch(() => undefined);
  if (asked === undefined) {
    if (pid === undefined) return "none";
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      return "none";
    }
  }
  const deadline = Date.now() + timeoutMs;
  while (pid !== undefined && Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return "stopped";
    }
    await sleep(100);
  }
  if (pid === undefined) return "stopped";
  throw new KataError("DEADLINE_EXCEEDED", `the VM pool daemon (pid ${pid}) did not stop within ${timeoutMs / 1000} s`);
}
