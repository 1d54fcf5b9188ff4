// The node-level shim server's messages and paths (docs/shim.md "The node-level server"). Three
// parties: `start` asks the keeper to serve a pod (one JSON line over the keeper's control
// socket); the keeper and the server it runs talk over the server's IPC channel, the keeper
// handing it every connection containerd opens (the socket's fd rides along with the message).
// Loads nothing but node:net and node:path: `start` uses it.
import { join } from "node:path";
import { callJsonLine } from "../../util/json-line-socket.js";
import { stateRoot } from "../../util/paths.js";
import type { ShimFlags } from "../flags.js";
import type { PreparedPodConfig } from "../pod-config.js";

export interface NodeShimPaths {
  root: string;
  /** The keeper's control socket: `start` asks it to serve pods. */
  socket: string;
  /** The keeper's and its servers' log (beside the directory: stop removes the directory). */
  log: string;
}

export function nodeShimPaths(root = join(stateRoot(), "kata-ts-shim")): NodeShimPaths {
  return { root, socket: join(root, "keeper.sock"), log: `${root}.log` };
}

/** What a pod's server needs, as `start` got it from containerd: kept by the keeper for the pod's life. */
export interface PodRegistration {
  /** The pod's shim socket (containerd's address for it): the pod's key everywhere. */
  socket: string;
  flags: Pick<ShimFlags, "namespace" | "id" | "address" | "publishBinary" | "bundle" | "debug" | "configPath">;
  /** containerd's ttRPC address for events ($TTRPC_ADDRESS of `start`'s environment). */
  ttrpcAddress: string;
  /** The configuration `start` validated, when it could (else the server loads it at Create). */
  prepared?: PreparedPodConfig;
}

export type KeeperRequest = { op: "serve"; pod: PodRegistration } | { op: "status" };
export type KeeperAnswer = { ok: true; serverPid?: number; pods?: number } | { ok: false; error: string };

/** Keeper -> server. A `conn` message carries the connection's fd as its handle. */
export type ToServer =
  | { op: "pod"; pod: PodRegistration; restore?: unknown }
  | { op: "conn"; socket: string; conn: number }
  | { op: "drain" };

/** Server -> keeper. */
export type ToKeeper =
  | { op: "ready" }
  | { op: "podReady"; socket: string }
  | { op: "podFailed"; socket: string; error: string }
  /** The pod's tasks as the server holds them now: handed back to the next server if this one dies. */
  | { op: "state"; socket: string; state: unknown }
  /** The server closed its end of this connection: the keeper closes its copy, and containerd sees the close. */
  | { op: "connClosed"; conn: number }
  /** Hold / let go of one of the pod's output FIFOs (its write end), so that a server's death is no EOF to containerd (fifo-io.ts). */
  | { op: "holdFifo" | "releaseFifo"; socket: string; path: string }
  /** The pod's server stopped (Shutdown, idle): the keeper stops listening for it. */
  | { op: "podGone"; socket: string }
  | { op: "drained" };

/** The error a stopping keeper answers `serve` with: `start` then starts (or finds) the next keeper. */
export const KEEPER_STOPPING = "the node's shim keeper is stopping";

const maxAnswerBytes = 64 * 1024;

export async function keeperCall(paths: NodeShimPaths, req: KeeperRequest, timeoutMs: number): Promise<KeeperAnswer> {
  const peer = `the node's shim keeper at ${paths.socket}`;
  return (await callJsonLine(paths.socket, req, { peer, unreachableHint: "is the node's shim keeper running?", maxBytes: maxAnswerBytes, timeoutMs })) as KeeperAnswer;
}
