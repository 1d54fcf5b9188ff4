// The pool socket's protocol: one JSON request per connection, one JSON line back. Requests:
// {"op":"take","shape":{...}} -> {"ok":true,"vm":PooledVmHandle} or {"ok":true} (none ready);
// {"op":"shim","build":KEY} -> {"ok":true,"shim":WarmShimHandle} or {"ok":true} (none ready of
// that build; src/pool/warm-shims.ts); {"op":"status"} -> {"ok":true,"status":PoolStatus}; {"op":"stop"} -> {"ok":true}, then the pool
// stops. Errors: {"ok":false,"error":"..."}. The socket is root's (0600, under the state root).
import { callJsonLine } from "../util/json-line-socket.js";
import type { PoolShape } from "./shape.js";

/** What a shim needs to adopt a pooled VM it did not start (it reaches it by sockets and pids). */
export interface PooledVmHandle {
  vmId: string;
  /** The VM's directory (pool/vms/<id>); the adopter renames it into its own state dir. */
  dir: string;
  qemuPid: number;
  virtiofsdPid: number;
  accel: "kvm" | "tcg";
  /** The tap QEMU opened in the VM's own netns (reachable as /proc/<qemuPid>/ns/net). */
  tapName: string;
  /** The MAC the guest NIC booted with; the adopter gives it the pod veth's. */
  mac: string;
  bootedAt: string;
}

/** A warm shim server handed to a pod's `start`, which hands it the pod on its control socket. */
export interface WarmShimHandle {
  pid: number;
  /** The warm server's control socket (under the pool's dir); it accepts one connection. */
  socket: string;
}

export interface ShapeStatus {
  key: string;
  tenant: string;
  vcpus: number;
  memoryMiB: number;
  ready: number;
  booting: number;
  /** Resident memory of the ready VMs' QEMU and virtiofsd processes. */
  rssKiB: number;
}

export interface PoolStatus {
  pid: number;
  poolSize: number;
  shapes: ShapeStatus[];
  taken: number;
  /** Handed to a shim that never took it (renamed its dir) within [factory] handover_timeout: stopped by the pool. */
  reclaimed: number;
  booted: number;
  bootFailures: number;
  /** Warm shim servers ready, and handed to pods' `start` since the daemon started. */
  warmShims?: { ready: number; starting: number; taken: number };
}

export type PoolRequest = { op: "take"; shape: PoolShape } | { op: "shim"; build: string } | { op: "status" } | { op: "stop" };
export type PoolResponse = { ok: true; vm?: PooledVmHandle; shim?: WarmShimHandle; status?: PoolStatus } | { ok: false; error: string };

/** The longest answer line a client reads (a status of many shapes is a few KiB). */
const maxAnswerBytes = 64 * 1024;

/** One request; rejects with UNAVAILABLE when no pool answers at `socketPath` (src/util/json-line-socket.ts has the other codes). */
export async function poolCall(socketPath: string, req: PoolRequest, timeoutMs = 5000): Promise<PoolResponse> {
  const peer = `the VM pool at ${socketPath}`;
  return (await callJsonLine(socketPath, req, { peer, unreachableHint: "is `kata-ts pool serve` running?", maxBytes: maxAnswerBytes, timeoutMs })) as PoolResponse;
}
