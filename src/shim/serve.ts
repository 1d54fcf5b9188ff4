// The long-running shim server (the internal `serve` action that `start` spawns detached): serves
// containerd.task.v2.Task on the shim socket until Shutdown finds no containers, or a signal.
import { Task } from "../protocol/gen/containerd/task/v2/shim_pb.js";
import { TtrpcServer } from "../protocol/ttrpc/index.js";
import { describeError, KataError } from "../util/errors.js";
import { EventPublisher } from "./events.js";
import type { ShimFlags } from "./flags.js";
import type { ShimEntry } from "./run.js";
import { shimLogger } from "./shim-log.js";
import { TaskService } from "./task-service.js";
import { taskImpl } from "./translate.js";

export async function serve(flags: ShimFlags, loadPodFactory: ShimEntry["loadPodFactory"]): Promise<void> {
  const bundle = flags.bundle || process.cwd();
  const log = shimLogger({ debug: flags.debug, id: flags.id });
  if (flags.socket === "") throw new KataError("INVALID_ARGUMENT", "serve needs -socket");
  const events = new EventPublisher(process.env.TTRPC_ADDRESS, flags.namespace, log);
  const svc = new TaskService({ factory: await loadPodFactory(log), events, log, configPath: flags.configPath });
  const server = new TtrpcServer();

  let stopping = false;
  const stop = (why: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ why }, "shim shutting down");
    // Let the Shutdown response go out before the socket closes under it.
    setTimeout(() => {
      void (async () => {
        await server.close().catch((err: unknown) => log.warn({ err: describeError(err) }, "closing server"));
        await svc.close().catch((err: unknown) => log.error({ err: describeError(err) }, "destroying pod"));
        await events.close().catch(() => undefined);
        process.exit(0);
      })();
    }, 20);
  };

  server.register(Task, taskImpl(svc, { shutdown: () => stop("Shutdown with no containers left") }));
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGPIPE", () => undefined);
  process.on("unhandledRejection", (err) => log.error({ err: describeError(err) }, "unhandled rejection"));
  await server.listen(flags.socket);
  log.info({ socket: flags.socket, bundle, namespace: flags.namespace }, "shim serving");
}
