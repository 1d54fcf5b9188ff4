// The internal `warm` action: a shim server the pool daemon started ahead of any pod
// (src/pool/warm-shims.ts). It loads what a server needs (the bundle's modules, the pod factory),
// takes the configuration the daemon validated over its IPC channel, says "ready", and waits on its
// control socket for one `start` (src/shim/warm-take.ts). At the hand-over it leaves the daemon
// (closes the channel), becomes what `serve` spawned by that `start` would be (its environment,
// cwd, stderr on the bundle's log FIFO; `start` moved it into its cgroup and priority), and serves
// the pod (serve.ts). Before a hand-over, the daemon's channel closing (stop, death) or a "retire"
// ends it: an untaken warm server never outlives the pool.
import { chmodSync, closeSync, constants, openSync, rmSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { describeError, KataError } from "../util/errors.js";
import { answerJsonLine, readJsonLine } from "../util/json-line-socket.js";
import type { ShimFlags } from "./flags.js";
import type { PreparedPodConfig } from "./pod-config.js";
import type { ShimEntry } from "./run.js";
import { serverChildEnv } from "./server-env.js";
import { shimLogger } from "./shim-log.js";
import { isWarmHandOver, WARM_HANDOVER_VERSION, type WarmHandOver } from "./warm-protocol.js";

/** A connected `start` has this long to send its hand-over line. */
const handOverReadMs = 5000;
/** It carries start's environment and stdin. */
const maxHandOverBytes = 4 << 20;

export async function serveWarm(flags: ShimFlags, entry: ShimEntry): Promise<void> {
  const send = process.send?.bind(process);
  if (flags.socket === "" || send === undefined) {
    throw new KataError("INVALID_ARGUMENT", "warm is the pool daemon's: it needs -socket and an IPC channel (src/pool/warm-shims.ts)");
  }
  const control = flags.socket;
  const log = shimLogger({ debug: false, id: "" }).child({ warm: control });
  let handedOver = false;
  const retire = (why: string): void => {
    if (handedOver) return;
    log.info({ why }, "warm shim server exits unused");
    rmSync(control, { force: true });
    process.exit(0);
  };
  process.on("disconnect", () => retire("the pool daemon closed its channel"));
  process.on("message", (m: unknown) => {
    if ((m as { op?: unknown }).op === "retire") retire("retired by the pool daemon");
  });
  process.on("SIGTERM", () => retire("SIGTERM"));
  process.on("SIGINT", () => retire("SIGINT"));

  const prepared = new Promise<PreparedPodConfig | undefined>((resolve) => {
    process.on("message", (m: unknown) => {
      const o = m as { op?: unknown; prepared?: PreparedPodConfig };
      if (o.op === "prepared") resolve(o.prepared);
    });
  });
  // What a server loads before and right after it listens, loaded now.
  const [{ serve }, { decodeRuntimeOptionsBytes }] = await Promise.all([import("./serve.js"), import("./runtime-options.js"), import("./pod-config.js"), entry.preloadPodFactory?.()]);
  send({ op: "config" });
  const config = await prepared;

  const listener = net.createServer();
  listener.once("connection", (sock) => {
    listener.close();
    rmSync(control, { force: true });
    readHandOver(sock)
      .then(async (msg) => {
        handedOver = true;
        // The pod's from now on: the daemon's channel closing no longer ends it.
        process.removeAllListeners("message");
        if (process.connected) process.disconnect();
        const since = Date.now();
        const logFd = becomeThePodsServer(msg);
        const podFlags: ShimFlags = { ...flags, namespace: msg.namespace, id: msg.id, address: msg.address, publishBinary: msg.publishBinary, debug: msg.debug, bundle: msg.bundle, socket: msg.socket, configPath: decodeRuntimeOptionsBytes(Buffer.from(msg.stdin, "base64")).configPath };
        await serve(podFlags, entry.loadPodFactory, {
          ...(config === undefined ? {} : { prepared: Promise.resolve(config) }),
          startAt: msg.startAt,
          warmSince: since,
          logFd,
          onListening: () => answerJsonLine(sock, { ok: true, pid: process.pid }),
        });
      })
      .catch((err: unknown) => {
        answerJsonLine(sock, { ok: false, error: describeError(err) });
        log.error({ err: describeError(err) }, "warm shim server hand-over failed");
        // Used up either way: a pod's server failed half-way, or nobody's.
        setTimeout(() => process.exit(1), 100);
      });
  });
  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    rmSync(control, { force: true });
    listener.listen(control, () => resolve());
  });
  chmodSync(control, 0o600);
  send({ op: "ready" });
}

async function readHandOver(sock: net.Socket): Promise<WarmHandOver> {
  const msg = await readJsonLine(sock, { what: "start's hand-over", maxBytes: maxHandOverBytes, timeoutMs: handOverReadMs });
  if (!isWarmHandOver(msg)) throw new KataError("INVALID_ARGUMENT", `start's hand-over is not one this build understands (version ${WARM_HANDOVER_VERSION}); start and the pool's warm server are of different builds`);
  return msg;
}

/**
 * The process state `start` would have spawned the pod's server with: its environment (plus the
 * server's own settings, which this process got from the daemon), cwd = bundle, and stderr = the
 * bundle's `log` FIFO (fd 2 reopened: the lowest free fd; the log goes to whatever fd that gives).
 */
function becomeThePodsServer(msg: WarmHandOver): number {
  const env = serverChildEnv(msg.env);
  for (const k of Object.keys(process.env)) if (!(k in env)) delete process.env[k];
  Object.assign(process.env, env);
  process.chdir(msg.bundle);
  closeSync(2);
  return openSync(join(msg.bundle, "log"), constants.O_RDWR | constants.O_APPEND | constants.O_CREAT, 0o600);
}
