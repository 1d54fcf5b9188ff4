// The shim's actions behind an entry script: parses Go-style flags and dispatches (each action
// loaded on demand: `start` stays light). The entry decides which pods the shim runs; nothing read
// at run time (flags, environment, configuration) can swap in other code. stdout carries protocol
// output only (an address or a DeleteResponse); errors go to stderr, which containerd shows
// together with stdout on failure.
import { describeError } from "../util/errors.js";
import type { Logger } from "../util/log.js";
import { parseShimArgs } from "./flags.js";
import { readStdin } from "./stdin.js";
import type { PodFactory } from "./pod-port.js";

export interface ShimEntry {
  /** The script `start` spawns as the `serve` action: the entry's own file. */
  serverScript: string;
  /** The pods `serve` runs and `delete` cleans up after. */
  loadPodFactory: (log: Logger) => Promise<PodFactory>;
  /**
   * The pods of the node-level server (node-server/server.ts), which serves many pods in one
   * process and so cannot join any one pod's cgroup; defaults to loadPodFactory.
   */
  loadNodePodFactory?: (log: Logger) => Promise<PodFactory>;
  /** Loads the pod factory's modules without making one: a warm server does it before it has a pod. */
  preloadPodFactory?: () => Promise<unknown>;
}

async function dispatch(argv: string[], entry: ShimEntry): Promise<number> {
  const { flags, action } = parseShimArgs(argv);
  if (flags.version) {
    process.stdout.write(`containerd-shim-kata-ts-v2: ${(await import("./translate.js")).shimVersion}\n`);
    return 0;
  }
  switch (action) {
    case "start":
      process.stdout.write(await (await import("./start.js")).start(flags, await readStdin(), entry.serverScript));
      return 0;
    case "delete":
      process.stdout.write(await (await import("./delete.js")).deleteAction(flags, entry.loadPodFactory, entry.serverScript));
      return 0;
    case "cleanup":
      // Internal: delete's work, in a detached process that outlives a killed `delete`.
      await (await import("./delete.js")).cleanupAction(flags, entry.loadPodFactory);
      return 0;
    case "warm":
      // Internal: a warm server the pool daemon keeps (warm-serve.ts).
      await (await import("./warm-serve.js")).serveWarm(flags, entry);
      return -1;
    case "node-keeper":
      // Internal: the node-level server's keeper, started by the first `start` that wants it.
      await (await import("./node-server/keeper.js")).runKeeper(entry.serverScript);
      return -1;
    case "node-server":
      // Internal: the node-level server, the keeper's child.
      await (await import("./node-server/server.js")).runNodeServer(entry);
      return -1;
    case "serve":
      await (await import("./serve.js")).serve(flags, entry.loadPodFactory);
      return -1; // keep running
    default:
      process.stderr.write(`containerd-shim-kata-ts-v2: unknown action "${action ?? ""}" (expected start, delete)\n`);
      return 2;
  }
}

/** Runs one shim action; sets the process's exit code, never rejects. */
export async function runShim(argv: string[], entry: ShimEntry): Promise<void> {
  try {
    const code = await dispatch(argv, entry);
    if (code >= 0) process.exitCode = code;
  } catch (err) {
    process.stderr.write(`containerd-shim-kata-ts-v2: ${describeError(err)}\n`);
    process.exitCode = 1;
  }
}
