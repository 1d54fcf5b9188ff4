// One pod's task API: its TaskService behind a ttRPC server, with its event publisher and the
// order a pod's server stops in. A per-pod shim process (serve.ts) runs one and exits when it
// stops; the node-level server (node-server/server.ts) runs one per pod in one process.
import { Task } from "../protocol/gen/containerd/task/v2/shim_pb.js";
import { TtrpcServer } from "../protocol/ttrpc/index.js";
import { describeError } from "../util/errors.js";
import type { Logger } from "../util/log.js";
import { EventPublisher } from "./events.js";
import type { FifoHolder } from "./fifo-io.js";
import type { PreparedPodConfig } from "./pod-config.js";
import type { PodFactory } from "./pod-port.js";
import { TaskService } from "./task-service.js";
import { taskImpl } from "./translate.js";

/** How long answers still being sent (the Delete that tore the pod down) may take before the server closes. */
const drainMs = 2000;
/**
 * A pod server that holds no task this long stops. containerd sends Create right after `start`
 * printed the address, and Shutdown after the last Delete; but a RunPodSandbox cancelled while
 * `start` ran kills `start` and deletes the bundle, and nobody ever talks to the server.
 */
export const idleEmptyStopMs = 30_000;

export interface PodTaskServerOptions {
  log: Logger;
  /** containerd's ttRPC address for events ($TTRPC_ADDRESS of the shim's environment). */
  ttrpcAddress: string | undefined;
  namespace: string;
  factory: Promise<PodFactory>;
  configPath: string;
  prepared: Promise<PreparedPodConfig | undefined>;
  /** After the pod's tasks changed (TaskService's onStateChange). */
  onStateChange?: () => void;
  /** Holds the pod's output FIFOs beside this process (fifo-io.ts). */
  fifoHolder?: FifoHolder;
  /** Runs once the pod is torn down and every connection is closed. */
  onStopped: (why: string) => void;
}

export class PodTaskServer {
  readonly svc: TaskService;
  readonly server = new TtrpcServer();
  private readonly events: EventPublisher;
  private stopping = false;
  private readonly idleTimer: NodeJS.Timeout;

  constructor(private readonly opts: PodTaskServerOptions) {
    this.events = new EventPublisher(opts.ttrpcAddress, opts.namespace, opts.log);
    this.svc = new TaskService({ factory: opts.factory, events: this.events, log: opts.log, configPath: opts.configPath, prepared: opts.prepared, ...(opts.onStateChange === undefined ? {} : { onStateChange: opts.onStateChange }), ...(opts.fifoHolder === undefined ? {} : { fifoHolder: opts.fifoHolder }) });
    this.server.register(Task, taskImpl(this.svc, { shutdown: () => this.stop("Shutdown with no containers left") }));
    this.idleTimer = setInterval(() => {
      if (this.svc.idleEmptyMs >= idleEmptyStopMs) this.stop(`no task for ${idleEmptyStopMs / 1000} s (containerd gave up on this shim's start)`);
    }, 5000);
    this.idleTimer.unref();
  }

  get stopped(): boolean {
    return this.stopping;
  }

  /**
   * Tears the pod down and closes the server. Let the Shutdown response go out before the
   * connection closes under it. The pod's teardown comes first, with the server still answering:
   * containerd sends Shutdown after the last task's Delete, which may be the app container's while
   * the sandbox task's Delete is still tearing the pod down; that Delete must finish and answer, or
   * containerd takes the shim for dead and cleans up beside it.
   */
  stop(why: string): void {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.idleTimer);
    const { log } = this.opts;
    log.info({ why }, "shim shutting down");
    setTimeout(() => {
      void (async () => {
        await this.svc.close().catch((err: unknown) => log.error({ err: describeError(err) }, "destroying pod"));
        await this.server.drain(drainMs);
        await this.server.close().catch((err: unknown) => log.warn({ err: describeError(err) }, "closing server"));
        await this.events.close().catch(() => undefined);
        this.opts.onStopped(why);
      })();
    }, 20);
  }
}
