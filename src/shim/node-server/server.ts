// The internal `node-server` action: one process that serves every pod of the node (instead of a
// shim process per pod), run and fed by the keeper (keeper.ts) over its IPC channel. Each pod gets
// its own task server (pod-task-server.ts), logger (the pod bundle's `log` FIFO, as a per-pod
// shim's stderr) and event publisher; containerd's connections arrive as fds from the keeper.
// After each change of a pod's tasks the server records them with the keeper, so that a server
// started after this one died takes the running pods over (restore).
import { closeSync, rmSync } from "node:fs";
import net from "node:net";
import { pino, type Logger } from "pino";
import { Task } from "../../protocol/gen/containerd/task/v2/shim_pb.js";
import { describeError, KataError } from "../../util/errors.js";
import { openBundleLog } from "../bundle-log.js";
import type { PodFactory } from "../pod-port.js";
import { PodTaskServer } from "../pod-task-server.js";
import { dropOwnMallocEnv } from "../server-env.js";
import type { ShimEntry } from "../run.js";
import type { PodRegistration, ToKeeper, ToServer } from "./protocol.js";

/**
 * containerd's task Wait: a call that waits for an exit, for as long as the task runs. A server
 * that dies or restarts cannot answer it, and containerd's CRI learns a container's exit from its
 * answer alone. So the server records each one it is answering (its connection, stream id and
 * request, as read) with the keeper, and the next server answers it on the same stream (replay).
 */
function isHandedOver(service: string, method: string): boolean {
  return service === Task.typeName && method === "Wait";
}

/** A call read from containerd on connection `conn` and not yet answered. */
interface PendingCall {
  conn: number;
  streamId: number;
  /** The ttRPC request frame's payload, base64. */
  request: string;
}

/** What the server records with the keeper for each pod. */
interface PodRecord {
  tasks: unknown;
  waits: PendingCall[];
}

interface ServedPod {
  reg: PodRegistration;
  task: PodTaskServer;
  logFd: number;
  conns: Map<number, net.Socket>;
  /** Wait calls being answered, by `${conn}/${streamId}`. */
  waits: Map<string, PendingCall>;
  /** Wait calls a server before this one was answering, by connection: answered once that connection arrives. */
  replays: Map<number, PendingCall[]>;
  /** The pod's socket, listened on by this server itself once its keeper is gone. */
  listener?: net.Server;
}

function recordOf(pod: ServedPod): PodRecord {
  // Calls handed over from the server before this one and not yet replayed (their connection has
  // not arrived) are still owed an answer.
  return { tasks: pod.task.svc.snapshot(), waits: [...pod.waits.values(), ...[...pod.replays.values()].flat()] };
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
        if (pod !== undefined && !pod.task.stopped) tell({ op: "state", socket, state: recordOf(pod) });
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
    // A record from a server of round 14 holds the tasks alone.
    const record = restore as Partial<PodRecord> | undefined;
    const tasks = typeof record === "object" && record !== null && "tasks" in record ? record.tasks : restore;
    const replays = new Map<number, PendingCall[]>();
    for (const w of Array.isArray(record?.waits) ? record.waits : []) replays.set(w.conn, [...(replays.get(w.conn) ?? []), w]);
    const served: ServedPod = {
      reg,
      logFd,
      conns: new Map(),
      waits: new Map(),
      replays,
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
          if (served.listener !== undefined) {
            served.listener.close();
            rmSync(reg.socket, { force: true });
          }
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
        await served.task.svc.restore(tasks);
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
    serveConn(pod, conn, new net.Socket({ handle, readable: true, writable: true } as net.SocketConstructorOpts));
  };

  const serveConn = (pod: ServedPod, conn: number, sock: net.Socket): void => {
    pod.conns.set(conn, sock);
    sock.once("close", () => {
      pod.conns.delete(conn);
      for (const [key, w] of pod.waits) if (w.conn === conn) pod.waits.delete(key);
      tell({ op: "connClosed", conn });
      recordState(pod.reg.socket);
    });
    const served = pod.task.server.serve(sock, {
      started: (streamId, service, method, request) => {
        if (!isHandedOver(service, method)) return;
        pod.waits.set(`${conn}/${streamId}`, { conn, streamId, request: Buffer.from(request).toString("base64") });
        recordState(pod.reg.socket);
      },
      ended: (streamId) => {
        if (pod.waits.delete(`${conn}/${streamId}`)) recordState(pod.reg.socket);
      },
    });
    for (const w of pod.replays.get(conn) ?? []) served.replay(w.streamId, Buffer.from(w.request, "base64"));
    pod.replays.delete(conn);
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
    await Promise.all([...pods.values()].map((p) => p.task.server.drain(5000, isHandedOver)));
    for (const [socket, pod] of pods) tell({ op: "state", socket, state: recordOf(pod) });
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
    // Its listening sockets died with it: listen on each pod's socket here, so that a restarted
    // containerd still reaches its pods (it dials the address in each bundle).
    let nextOwnConn = -1;
    for (const pod of pods.values()) {
      const listener = net.createServer((sock) => serveConn(pod, nextOwnConn--, sock));
      listener.on("error", (err) => log.warn({ err: err.message, socket: pod.reg.socket }, "cannot listen on the pod's socket: a containerd restart will not find this pod"));
      rmSync(pod.reg.socket, { force: true });
      listener.listen(pod.reg.socket);
      pod.listener = listener;
    }
  });
  tell({ op: "ready" });
}
