// Who runs the pool daemon: the first shim that finds no pool answering starts one (on demand, no
// installer service needed). The daemon must outlive that shim, its pod and containerd, so it is
// started detached (its own session, no inherited stdio) and moved out of the shim's cgroup (the
// pod's, removed with the pod) into a cgroup of its own, `kata-ts-pool-daemon`, at the root of every
// hierarchy, at normal priority (it answers takes); its VMs run low beside it (priority.ts).
// Its output goes to <state root>/kata-ts-pool.log.
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { serverNodeFlags, withOwnMallocEnv } from "../shim/server-env.js";
import { KataError } from "../util/errors.js";
import type { Logger } from "../util/log.js";
import { poolPaths, type PoolPaths } from "./layout.js";
import { joinPoolCgroup } from "./priority.js";
import { poolCall } from "./protocol.js";

export { joinPoolCgroup, POOL_CGROUP } from "./priority.js";

/** The kata-ts command beside this build (bin/kata-ts.js, as installed and in the repo). */
const kataTsCli = fileURLToPath(new URL("../../../bin/kata-ts.js", import.meta.url));

/** Beside the pool's dir, not in it: the watchdog and a stop remove that dir whole (rmdir). */
export function poolLogPath(paths: PoolPaths): string {
  return join(dirname(paths.root), "kata-ts-pool.log");
}

/**
 * How the daemon is started: `node [flags] kata-ts pool serve [--config FILE]`. A long-lived Node
 * process idle nearly all the time, so it runs as a shim server does (src/shim/server-env.ts): a
 * 1 MiB semi-space and glibc's trim settings, which `pool serve` removes from its environment at
 * once so its QEMUs and virtiofsds keep glibc's defaults (its warm shim servers get them again).
 */
export function poolDaemonSpawn(configPath: string | undefined, env: NodeJS.ProcessEnv): { nodeFlags: readonly string[]; args: string[]; env: NodeJS.ProcessEnv } {
  const args = [kataTsCli, "pool", "serve", ...(configPath === undefined || configPath === "" ? [] : ["--config", configPath])];
  return { nodeFlags: poolDaemonNodeFlags, args, env: withOwnMallocEnv(env) };
}

/** The daemon's V8 flags: the shim server's (bench/pool-memory.ts, docs/pool.md "Memory cost"). */
export const poolDaemonNodeFlags: readonly string[] = serverNodeFlags;

async function answering(paths: PoolPaths): Promise<boolean> {
  const res = await poolCall(paths.socket, { op: "status" }, 2000).catch(() => undefined);
  return res?.ok === true;
}

/**
 * Starts `kata-ts pool serve` unless a pool answers already. Returns without waiting for it to
 * pool anything (the calling pod boots its own VM). Two shims starting one at once are fine: the
 * second daemon finds the first's lock and exits (PoolServer.start).
 */
export async function startPoolOwner(configPath: string | undefined, log: Logger, paths: PoolPaths = poolPaths()): Promise<number | undefined> {
  if (await answering(paths)) return undefined;
  await mkdir(paths.root, { recursive: true, mode: 0o700 });
  const logFd = openSync(poolLogPath(paths), "a", 0o600);
  let pid: number | undefined;
  try {
    const how = poolDaemonSpawn(configPath, process.env);
    const args = [...how.nodeFlags, ...how.args];
    const child = spawn(process.execPath, args, { detached: true, cwd: "/", stdio: ["ignore", logFd, logFd], env: how.env });
    pid = child.pid;
    child.unref();
    if (pid === undefined) throw new KataError("INTERNAL", `could not start the VM pool daemon (${process.execPath} ${args.join(" ")})`);
    child.once("error", (err) => log.warn({ err: err.message }, "the VM pool daemon did not start"));
  } finally {
    closeSync(logFd);
  }
  // Out of this shim's (the pod's) cgroup at once; the daemon does it again itself.
  await joinPoolCgroup(pid).catch((err: unknown) => log.warn({ err: (err as Error).message, pid }, "moving the VM pool daemon into its own cgroup"));
  log.info({ pid, socket: paths.socket, log: poolLogPath(paths) }, "started the node's VM pool daemon");
  return pid;
}
