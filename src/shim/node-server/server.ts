// The internal `node-server` action: one process that serves every pod of the node (instead of a
// shim process per pod), run and fed by the keeper (keeper.ts) over its IPC channel. Each pod gets
// its own task server (pod-task-server.ts), logger (the pod bundle's `log` FIFO, as a per-pod
// shim's stderr) and event publisher; containerd's connections arrive as fds from the keeper.
// After each change of a pod's tasks the server records them with the keeper, so that a server
// started after this one died takes the running pods over (restore).
import { closeSync } from "node:fs";
import net from "node:net";
import { pino, type Logger } from "pino";
import { describeError, KataError } from "../../util/errors.js";
import { openBundleLog } from "../bundle-log.js";
import type { PodFactory } from "../pod-port.js";
import { PodTaskServer } from "../pod-task-server.js";
import { dropOwnMallocEnv } from "../server-env.js";
import type { ShimEntry } from "../run.js";
import type { PodRegistration, ToKeeper, ToServer } from "./protocol.js";

interface ServedPod {
  reg: PodRegistration;
  task: PodTaskServer;
  logFd: number;
  conns: Map<number, net.Socket>;
}

export async function runNodeServer(entry: ShimEntry): Promise<void> {
  const send = process.send?.bind(process);
  if (send === undefined) throw new KataError("INVALID_ARGUMENT", "node-server is the shim keeper's: it needs an IPC channel (src/shim/node-server/keeper.ts)");
  dropOwnMallocEnv(process.env);
  const log = pino({ name: "kata-ts-shim-server", base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
  const tell = (m: ToKeeper): void => {
    if (process.connected) send(m);
  };
  const loadFactory = entry.loadNodePodFactory ?? entry.loadPodFactory;
  const factory: Promise<PodFactory> = loadFactory(log);
  factory.catch((err: unknown) => log.error({ err: describeError(err) }, "loading the pod factory"));
  const pods = new Map<string, ServedPod>();
  let stopping = false;

  const stateTimers = new Map<string, NodeJS.Immediate>();
  const recordState = (socket: string): void => {
    if (stateTimers.has(socket)) return;
    stateTimers.set(
      socket,
      setImmediate(() => {
        stateTimers.delete(socket);
        const pod = pods.get(socket);
        if (pod !== undefined && !pod.task.stopped) tell({ op: "state", socket, state: pod.task.svc.snapshot() });
      }),
    );
  };

  const addPod = async (reg: PodRegistration, restore: unknown): Promise<void> => {
    if (pods.has(reg.socket)) return tell({ op: "podReady", socket: reg.socket });
    const logFd = openBundleLog(reg.flags.bundle);
    const podLog = pino(
      { name: "containerd-shim-kata-ts-v2", level: reg.flags.debug ? "debug" : (process.env.KATA_TS_LOG_LEVEL ?? "info"), base: { pid: process.pid, id: reg.flags.id } },
      pino.destination({ dest: logFd, sync: true }),
    ) as Logger;
    const served: ServedPod = {
      reg,
      logFd,
      conns: new Map(),
      task: new PodTaskServer({
        log: podLog,
        ttrpcAddress: reg.ttrpcAddress,
        namespace: reg.flags.namespace,
        factory,
        configPath: reg.flags.configPath,
        prepared: Promise.resolve(reg.prepared),
        onStateChange: () => recordState(reg.socket),
        fifoHolder: {
          hold: (path) => tell({ op: "holdFifo", socket: reg.socket, path }),
          release: (path) => tell({ op: "releaseFifo", socket: reg.socket, path }),
        },
        onStopped: (why) => {
          pods.delete(reg.socket);
          for (const c of served.conns.values()) c.destroy();
          try {
            closeSync(logFd);
          } catch {
            // Closed already.
          }
          tell({ op: "podGone", socket: reg.socket });
          log.info({ pod: reg.flags.id, why }, "pod's server stopped");
          if ((stopping || !process.connected) && pods.size === 0) process.exit(0);
        },
      }),
    };
    pods.set(reg.socket, served);
    if (restore !== undefined) {
      try {
        await served.task.svc.restore(restore);
        podLog.info("shim serving: took the pod over from a server that exited");
      } catch (err) {
        // Nothing of the pod is this server's: its task server stops (timer, log fd) and the
        // keeper, told podFailed, closes the pod's connections for containerd to clean up.
        served.task.stop(`could not take the pod over: ${describeError(err)}`);
        throw err;
      }
    } else podLog.info({ socket: reg.socket, bundle: reg.flags.bundle, namespace: reg.flags.namespace, nodeServer: process.pid }, "shim serving");
    tell({ op: "podReady", socket: reg.socket });
  };

  const addConn = (socket: string, conn: number, handle: unknown): void => {
    const pod = pods.get(socket);
    if (pod === undefined || handle === undefined) {
      tell({ op: "connClosed", conn });
      return;
    }
    // `handle` (a bare pipe, as child_process hands one over) is how Node itself wraps a received fd.
    const sock = new net.Socket({ handle, readable: true, writable: true } as net.SocketConstructorOpts);
    pod.conns.set(conn, sock);
    sock.once("close", () => {
      pod.conns.delete(conn);
      tell({ op: "connClosed", conn });
    });
    pod.task.server.serve(sock);
  };

  process.on("message", (m: unknown, handle: unknown) => {
    const msg = m as ToServer;
    switch (msg.op) {
      case "pod":
        addPod(msg.pod, msg.restore).catch((err: unknown) => {
          log.error({ err: describeError(err), pod: msg.pod.flags.id }, "cannot serve the pod");
          tell({ op: "podFailed", socket: msg.pod.socket, error: describeError(err) });
        });
        return;
      case "conn":
        addConn(msg.socket, msg.conn, handle);
        return;
      case "drain":
        void drain();
        return;
    }
  });

  /** An upgrade: stop reading, let the calls being answered finish, record every pod, exit. */
  const drain = async (): Promise<void> => {
    log.info({ pods: pods.size }, "draining for a restart");
    // Stop the reads at the fd (a paused stream would still read ahead into its buffer, which
    // this process takes with it): what containerd sends now waits in the socket for the next server.
    for (const pod of pods.values()) for (const c of pod.conns.values()) (c as net.Socket & { _handle?: { readStop?: () => number } | null })._handle?.readStop?.();
    await Promise.all([...pods.values()].map((p) => p.task.server.drain(5000)));
    for (const [socket, pod] of pods) tell({ op: "state", socket, state: pod.task.svc.snapshot() });
    tell({ op: "drained" });
    setTimeout(() => process.exit(0), 50);
  };

  const stopAll = (why: string): void => {
    if (stopping) return;
    stopping = true;
    if (pods.size === 0) process.exit(0);
    for (const pod of pods.values()) pod.task.stop(why);
  };
  process.on("SIGTERM", () => stopAll("SIGTERM"));
  process.on("SIGINT", () => stopAll("SIGINT"));
  process.on("SIGPIPE", () => undefined);
  process.on("unhandledRejection", (err) => log.error({ err: describeError(err) }, "unhandled rejection"));
  // The keeper gone: nothing holds the connections any more but this process, which serves on;
  // it exits with its last pod.
  process.on("disconnect", () => {
    log.error({ pods: pods.size }, "the keeper is gone: serving on without it; a crash of this process now ends its pods");
    if (pods.size === 0) process.exit(0);
  });
  tell({ op: "ready" });
}
