// The long-running shim server (the internal `serve` action that `start` spawns detached): serves
// containerd.task.v2.Task on the shim socket until Shutdown finds no containers, or a signal.
import { closeSync, writeSync } from "node:fs";
import { Task } from "../protocol/gen/containerd/task/v2/shim_pb.js";
import { TtrpcServer } from "../protocol/ttrpc/index.js";
import { describeError, KataError } from "../util/errors.js";
import { EventPublisher } from "./events.js";
import { READY_FD_ENV, START_AT_ENV, type ShimFlags } from "./flags.js";
import { dropOwnMallocEnv } from "./server-env.js";
import type { PodFactory } from "./pod-port.js";
import type { ShimEntry } from "./run.js";
import { shimLogger } from "./shim-log.js";
import { TaskService } from "./task-service.js";
import { handOverPipe, readPreparedConfig, type PreparedPodConfig } from "./pod-config.js";
import { taskImpl } from "./translate.js";

/** How long answers still being sent (the Delete that tore the pod down) may take before the shim exits. */
const drainMs = 2000;
/**
 * A shim that holds no task this long exits. containerd sends Create right after `start` printed
 * the address, and Shutdown after the last Delete; but a RunPodSandbox cancelled while `start` ran
 * kills `start` and deletes the bundle, and nobody ever talks to the server it spawned.
 */
const idleEmptyExitMs = 30_000;

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
  const events = new EventPublisher(process.env.TTRPC_ADDRESS, flags.namespace, log);
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
  const svc = new TaskService({ factory, events, log, configPath: flags.configPath, prepared });
  const server = new TtrpcServer();

  let stopping = false;
  const stop = (why: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ why }, "shim shutting down");
    // Let the Shutdown response go out before the socket closes under it. The pod's teardown
    // comes first, with the server still answering: containerd sends Shutdown after the last
    // task's Delete, which may be the app container's while the sandbox task's Delete is still
    // tearing the pod down; that Delete must finish and answer, or containerd takes the shim for
    // dead and cleans up beside it.
    setTimeout(() => {
      void (async () => {
        await svc.close().catch((err: unknown) => log.error({ err: describeError(err) }, "destroying pod"));
        await server.drain(drainMs);
        await server.close().catch((err: unknown) => log.warn({ err: describeError(err) }, "closing server"));
        await events.close().catch(() => undefined);
        process.exit(0);
      })();
    }, 20);
  };

  server.register(Task, taskImpl(svc, { shutdown: () => stop("Shutdown with no containers left") }));
  setInterval(() => {
    if (svc.idleEmptyMs >= idleEmptyExitMs) stop(`no task for ${idleEmptyExitMs / 1000} s (containerd gave up on this shim's start)`);
  }, 5000).unref();
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGPIPE", () => undefined);
  process.on("unhandledRejection", (err) => log.error({ err: describeError(err) }, "unhandled rejection"));
  await server.listen(flags.socket);
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
