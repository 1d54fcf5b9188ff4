// The long-running shim server (the internal `serve` action that `start` spawns detached): serves
// containerd.task.v2.Task on the shim socket (pod-task-server.ts) until Shutdown finds no
// containers, or a signal, then exits.
import { closeSync, writeSync } from "node:fs";
import { describeError, KataError } from "../util/errors.js";
import { READY_FD_ENV, START_AT_ENV, type ShimFlags } from "./flags.js";
import { dropOwnMallocEnv } from "./server-env.js";
import type { PodFactory } from "./pod-port.js";
import type { ShimEntry } from "./run.js";
import { shimLogger } from "./shim-log.js";
import { handOverPipe, readPreparedConfig, type PreparedPodConfig } from "./pod-config.js";
import { PodTaskServer } from "./pod-task-server.js";

/** How the server was started: by `start` (the default: what it passed in its environment and fds) or warm (src/shim/warm-serve.ts). */
export interface ServeStartup {
  /** The configuration `start` (or the pool daemon) validated. */
  prepared?: Promise<PreparedPodConfig | undefined>;
  /** When `start` began (epoch ms). */
  startAt?: number;
  /** Called once the socket listens (default: the ready fd `start` gave). */
  onListening?: () => void;
  /** A warm server handed this pod (for the log). */
  warmSince?: number;
  /** The fd the log goes to (default 2). */
  logFd?: number;
}

export async function serve(flags: ShimFlags, loadPodFactory: ShimEntry["loadPodFactory"], startup: ServeStartup = {}): Promise<void> {
  const bundle = flags.bundle || process.cwd();
  // The server's own settings (start.ts serverEnv) are not its children's (QEMU, virtiofsd, the pool daemon).
  dropOwnMallocEnv(process.env);
  const log = shimLogger({ debug: flags.debug, id: flags.id }, startup.logFd);
  if (flags.socket === "") throw new KataError("INVALID_ARGUMENT", "serve needs -socket");
  // Read from the start: `start` writes it while this process starts up (pod-config.ts).
  const prepared = startup.prepared ?? readPreparedConfig(handOverPipe(), log);
  // The pod factory (the sandbox layer's modules) loads once the socket listens: `start` and
  // containerd go on meanwhile, and Create waits for it.
  let startFactoryLoad!: () => void;
  const factory = new Promise<PodFactory>((resolve, reject) => {
    startFactoryLoad = () => {
      loadPodFactory(log).then(resolve, reject);
    };
  });
  factory.catch((err: unknown) => log.error({ err: describeError(err) }, "loading the pod factory"));
  const pod = new PodTaskServer({ log, ttrpcAddress: process.env.TTRPC_ADDRESS, namespace: flags.namespace, factory, configPath: flags.configPath, prepared, onStopped: () => process.exit(0) });
  process.on("SIGTERM", () => pod.stop("SIGTERM"));
  process.on("SIGINT", () => pod.stop("SIGINT"));
  process.on("SIGPIPE", () => undefined);
  process.on("unhandledRejection", (err) => log.error({ err: describeError(err) }, "unhandled rejection"));
  await pod.server.listen(flags.socket);
  (startup.onListening ?? signalListening)();
  startFactoryLoad();
  // When `start` and this process began, and listening: the shim's share of a pod start (docs/pool.md).
  const startAt = startup.startAt ?? Number(process.env[START_AT_ENV]);
  const times = {
    serveProcessAt: Math.round(performance.timeOrigin),
    listeningAt: Date.now(),
    ...(Number.isFinite(startAt) && startAt > 0 ? { startProcessAt: startAt } : {}),
    ...(startup.warmSince === undefined ? {} : { warm: true, handOverAt: startup.warmSince }),
  };
  delete process.env[START_AT_ENV];
  log.info({ socket: flags.socket, bundle, namespace: flags.namespace, ...times }, "shim serving");
}

/** Tells `start` (on the fd it named in READY_FD_ENV) that the socket listens, and closes that fd. */
function signalListening(): void {
  const fd = Number(process.env[READY_FD_ENV]);
  delete process.env[READY_FD_ENV];
  if (!Number.isInteger(fd) || fd < 3) return;
  try {
    writeSync(fd, "listening\n");
  } catch {
    // `start` is gone (killed, or it gave up): nobody to tell.
  }
  try {
    closeSync(fd);
  } catch {
    // Already closed.
  }
}
