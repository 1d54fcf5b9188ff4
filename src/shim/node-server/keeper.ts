// The internal `node-keeper` action: the node-level shim server's keeper. It listens on every
// pod's shim socket and accepts containerd's connections, and hands each one to the server
// process it runs (node-server/server.ts) over the server's IPC channel, keeping its own copy of
// the fd and never reading from it. containerd 1.6/1.7 take a closed shim connection for the
// shim's death and clean its tasks up (runtime/v2 shim.go: cleanupAfterDeadShim); with the keeper
// holding every connection and every listening socket, a server that crashes or is restarted
// (SIGHUP: an upgrade) closes nothing containerd can see. The next server is handed the same
// connections and each pod's last recorded tasks, and takes the running VMs over. The keeper
// itself does nothing else: small code that has no reason to crash.
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, closeSync, constants, mkdirSync, openSync, rmdirSync, rmSync } from "node:fs";
import net from "node:net";
import { dirname } from "node:path";
import { pino } from "pino";
import { describeError, KataError } from "../../util/errors.js";
import { answerJsonLine, readJsonLine } from "../../util/json-line-socket.js";
import { joinCgroup } from "../../sandbox/host-cgroup.js";
import { isListening } from "../start-light.js";
import { serverEnv, serverNodeFlags } from "../server-env.js";
import { KEEPER_STOPPING, keeperCall, nodeShimPaths, type KeeperRequest, type PodRegistration, type ToKeeper, type ToServer } from "./protocol.js";

/** The keeper's and its server's cgroup at the root of every hierarchy: node-level, not any pod's. */
export const NODE_SHIM_CGROUP = "kata-ts-shim";
/** A `start` waits this long for its pod's server. */
const podReadyMs = 15_000;
/** Server crashes within crashWindowMs beyond which the keeper gives up (and closes every pod's connections). */
const maxCrashes = 5;
const crashWindowMs = 60_000;
/** With no pod left for this long, the keeper and its server exit ($KATA_TS_NODE_SHIM_IDLE_S overrides). */
const defaultIdleExitS = 60;

/** $KATA_TS_NODE_SHIM_IDLE_S in ms: how long the keeper waits with no pod before it exits. */
export function idleExitMsFrom(env: NodeJS.ProcessEnv): number {
  const raw = env.KATA_TS_NODE_SHIM_IDLE_S;
  if (raw === undefined || raw === "") return defaultIdleExitS * 1000;
  const s = Number(raw);
  if (!Number.isFinite(s) || s < 0) throw new KataError("INVALID_ARGUMENT", `KATA_TS_NODE_SHIM_IDLE_S=${JSON.stringify(raw)} is not a number of seconds >= 0; unset it for the default ${defaultIdleExitS}`);
  return Math.round(s * 1000);
}

interface KeptPod {
  reg: PodRegistration;
  listener: net.Server;
  conns: Map<number, net.Socket>;
  /** The pod's output FIFOs the keeper holds open for writing (holdFifo), by path. */
  fifos: Map<string, number>;
  /** The server's last record of the pod's tasks (ToKeeper "state"), handed to a restarted server. */
  state?: unknown;
  /** Served by the current server (its podReady came). */
  ready: boolean;
  waiters: Array<(error?: string) => void>;
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Closed already.
  }
}

/** The pipe behind a net.Socket: what travels over the IPC channel as a bare handle (the receiver wraps it). */
type SocketWithHandle = net.Socket & { _handle?: object | null };

export async function runKeeper(serverScript: string): Promise<void> {
  const paths = nodeShimPaths();
  const idleExitMs = idleExitMsFrom(process.env);
  const log = pino({ name: "kata-ts-shim-keeper", base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
  mkdirSync(paths.root, { recursive: true, mode: 0o700 });
  if (await keeperCall(paths, { op: "status" }, 2000).then((a) => a.ok, () => false)) {
    log.info({ socket: paths.socket }, "another keeper answers already: exiting");
    return;
  }
  rmSync(paths.socket, { force: true });
  // Out of the cgroup of whoever started it (containerd's, via `start`): the keeper and its server
  // are the node's, and outlive containerd's restarts.
  await joinCgroup(`/${NODE_SHIM_CGROUP}`).catch((err: unknown) => log.warn({ err: describeError(err) }, "joining the keeper's own cgroup"));

  const pods = new Map<string, KeptPod>();
  let nextConn = 1;
  let server: ChildProcess | undefined;
  let serverReady = false;
  let stopping = false;
  const crashes: number[] = [];
  let idleSince: number | undefined = Date.now();

  const toServer = (msg: ToServer, handle?: object): void => {
    if (server === undefined || !serverReady || !server.connected) return;
    // A bare pipe handle: sent as "net.Native", so the keeper's socket stays open (and unread) here.
    server.send(msg, handle as net.Socket | undefined, (err) => {
      if (err) log.warn({ err: err.message, op: msg.op }, "sending to the server failed");
    });
  };
  const handConn = (pod: KeptPod, conn: number, sock: SocketWithHandle): void => {
    if (sock._handle === null || sock._handle === undefined) return;
    toServer({ op: "conn", socket: pod.reg.socket, conn }, sock._handle);
  };
  const handPod = (pod: KeptPod): void => {
    toServer({ op: "pod", pod: pod.reg, ...(pod.state === undefined ? {} : { restore: pod.state }) });
  };
  const dropPod = (pod: KeptPod, why: string): void => {
    if (pods.get(pod.reg.socket) !== pod) return;
    pods.delete(pod.reg.socket);
    pod.listener.close();
    rmSync(pod.reg.socket, { force: true });
    for (const sock of pod.conns.values()) sock.destroy();
    for (const fd of pod.fifos.values()) closeQuietly(fd);
    for (const w of pod.waiters.splice(0)) w(why);
    log.info({ pod: pod.reg.flags.id, why }, "pod no longer served");
    if (pods.size === 0) idleSince = Date.now();
  };

  const onServerMessage = (m: ToKeeper): void => {
    switch (m.op) {
      case "ready":
        serverReady = true;
        log.info({ serverPid: server?.pid, pods: pods.size }, "server ready");
        for (const pod of pods.values()) handPod(pod);
        return;
      case "podReady": {
        const pod = pods.get(m.socket);
        if (pod === undefined) return;
        pod.ready = true;
        for (const [id, sock] of pod.conns) handConn(pod, id, sock);
        for (const w of pod.waiters.splice(0)) w();
        return;
      }
      case "podFailed": {
        const pod = pods.get(m.socket);
        if (pod !== undefined) dropPod(pod, m.error);
        return;
      }
      case "state": {
        const pod = pods.get(m.socket);
        if (pod !== undefined) pod.state = m.state;
        return;
      }
      case "connClosed":
        for (const pod of pods.values()) {
          const sock = pod.conns.get(m.conn);
          if (sock === undefined) continue;
          pod.conns.delete(m.conn);
          sock.destroy();
        }
        return;
      case "podGone": {
        const pod = pods.get(m.socket);
        if (pod !== undefined) dropPod(pod, "its server stopped (Shutdown, or no task left)");
        return;
      }
      case "holdFifo": {
        const pod = pods.get(m.socket);
        if (pod === undefined || pod.fifos.has(m.path)) return;
        try {
          // A writer only, which never blocks: containerd has its read end open (else ENXIO).
          pod.fifos.set(m.path, openSync(m.path, constants.O_WRONLY | constants.O_NONBLOCK));
        } catch (err) {
          log.warn({ err: (err as Error).message, path: m.path }, "cannot hold an output FIFO: a server's death would end that output");
        }
        return;
      }
      case "releaseFifo": {
        const pod = pods.get(m.socket);
        const fd = pod?.fifos.get(m.path);
        if (pod === undefined || fd === undefined) return;
        pod.fifos.delete(m.path);
        closeQuietly(fd);
        return;
      }
      case "drained":
        return;
    }
  };

  const startServer = (): void => {
    serverReady = false;
    for (const pod of pods.values()) pod.ready = false;
    const child = spawn(process.execPath, [...serverNodeFlags, serverScript, "node-server"], {
      cwd: "/",
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      // Each pod's stdin FIFO open holds a thread-pool thread until containerd opens its end.
      env: { ...serverEnv(process.env, 0), UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? "64" },
    });
    server = child;
    child.on("message", (m) => onServerMessage(m as ToKeeper));
    child.on("error", (err) => log.error({ err: err.message }, "the server process failed"));
    child.once("exit", (code, signal) => {
      if (server === child) server = undefined;
      serverReady = false;
      if (stopping) return;
      const now = Date.now();
      crashes.push(now);
      while (crashes.length > 0 && (crashes[0] as number) < now - crashWindowMs) crashes.shift();
      log.error({ code, signal, pods: pods.size, recentExits: crashes.length }, "the server exited; starting another, which takes the pods over");
      if (crashes.length > maxCrashes) {
        // A server that cannot stay up would leave containerd's calls unanswered for good: close
        // everything, so containerd sees each pod's shim gone and cleans up (shim delete).
        log.fatal({ crashes: crashes.length, windowS: crashWindowMs / 1000 }, "the server keeps dying: closing every pod's connections");
        for (const pod of [...pods.values()]) dropPod(pod, "the node's shim server keeps dying");
        stopping = true;
        setTimeout(() => process.exit(1), 100);
        return;
      }
      setTimeout(startServer, 200);
    });
  };

  const serve = async (reg: PodRegistration): Promise<void> => {
    // `start` asks the next keeper (it retries on this answer).
    if (stopping) throw new KataError("UNAVAILABLE", KEEPER_STOPPING);
    let pod = pods.get(reg.socket);
    if (pod === undefined) {
      mkdirSync(dirname(reg.socket), { recursive: true, mode: 0o711 });
      if (await isListening(reg.socket)) throw new KataError("ALREADY_EXISTS", `something else listens on ${reg.socket} already`);
      rmSync(reg.socket, { force: true });
      const listener = net.createServer({ pauseOnConnect: true });
      const kept: KeptPod = { reg, listener, conns: new Map(), fifos: new Map(), ready: false, waiters: [] };
      listener.on("connection", (sock: SocketWithHandle) => {
        const id = nextConn++;
        sock.on("error", () => undefined);
        kept.conns.set(id, sock);
        if (kept.ready && serverReady) handConn(kept, id, sock);
      });
      listener.on("error", (err) => log.warn({ err: err.message, socket: reg.socket }, "pod socket error"));
      await new Promise<void>((resolve, reject) => {
        listener.once("error", reject);
        listener.listen(reg.socket, () => resolve());
      });
      pods.set(reg.socket, kept);
      idleSince = undefined;
      pod = kept;
      handPod(kept);
    }
    if (pod.ready) return;
    const target = pod;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        dropPod(target, `its server did not take it within ${podReadyMs} ms`);
      }, podReadyMs);
      target.waiters.push((error) => {
        clearTimeout(timer);
        if (error === undefined) resolve();
        else reject(new KataError("UNAVAILABLE", `the node's shim server could not serve pod ${reg.flags.id}: ${error}; see ${paths.log}`));
      });
    });
  };

  const control = net.createServer((sock) => {
    sock.on("error", () => undefined);
    readJsonLine(sock, { what: "a keeper request", maxBytes: 1 << 20, timeoutMs: 5000 })
      .then(async (req) => {
        const r = req as KeeperRequest;
        if (r.op === "status") return answerJsonLine(sock, { ok: true, serverPid: server?.pid, pods: pods.size });
        if (r.op === "serve") {
          await serve(r.pod);
          return answerJsonLine(sock, { ok: true, serverPid: server?.pid });
        }
        throw new KataError("INVALID_ARGUMENT", `unknown keeper request ${JSON.stringify((r as { op?: unknown }).op)}`);
      })
      .catch((err: unknown) => answerJsonLine(sock, { ok: false, error: describeError(err) }));
  });
  await new Promise<void>((resolve, reject) => {
    control.once("error", reject);
    control.listen(paths.socket, () => resolve());
  });
  chmodSync(paths.socket, 0o600);
  log.info({ socket: paths.socket, serverScript }, "shim keeper listening");
  startServer();

  const stop = (why: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ why, pods: pods.size }, "shim keeper stopping");
    control.close();
    rmSync(paths.socket, { force: true });
    // The directory goes too unless a next keeper already listens in it (rmdir refuses then).
    try {
      rmdirSync(paths.root);
    } catch {
      // Not empty (a next keeper) or gone already.
    }
    const child = server;
    // The server tears its pods down (as a per-pod shim does on SIGTERM); their sockets go after.
    const done = (): void => {
      for (const pod of [...pods.values()]) dropPod(pod, why);
      process.exit(0);
    };
    if (child === undefined || child.exitCode !== null) return done();
    child.once("exit", done);
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), 30_000).unref();
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  // An upgrade: the running server finishes what it answers and exits; the next one (the script
  // on disk now) takes the pods over.
  process.on("SIGHUP", () => {
    log.info("SIGHUP: restarting the server");
    toServer({ op: "drain" });
  });
  setInterval(
    () => {
      if (idleSince !== undefined && Date.now() - idleSince >= idleExitMs) stop(`no pod for ${idleExitMs / 1000} s`);
    },
    Math.min(5000, Math.max(100, idleExitMs / 2)),
  ).unref();
}
