// `start`'s side of a warm shim server (src/pool/warm-shims.ts): ask the pool daemon for a server
// of this build, move it where a server spawned by this `start` would run, and hand it the pod on
// its control socket; it answers once it listens on the pod's socket. Any failure (no daemon, none
// ready, another build, a deadline) is `false`: `start` then spawns a server as before. Never
// loads protobuf, pino or the configuration schemas: the warm server decodes the runtime options,
// and the daemon validated the configuration.
import { readFile, writeFile } from "node:fs/promises";
import { getPriority } from "node:os";
import { join } from "node:path";
import { poolPaths } from "../pool/layout.js";
import { reniceThreads } from "../pool/priority.js";
import { poolCall } from "../pool/protocol.js";
import { cgroupDirsOf } from "../sandbox/host-cgroup.js";
import { callJsonLine } from "../util/json-line-socket.js";
import type { ShimFlags } from "./flags.js";
import { shimBuildKey, WARM_HANDOVER_VERSION, type WarmHandOver, type WarmReply } from "./warm-protocol.js";

/** The daemon's answer: it answers at once or not at all (~40 ms on a quiet host, ~300 ms loaded). */
const askDeadlineMs = 1000;
/** From connecting to the warm server to its "listening". */
const handOverDeadlineMs = 3000;
/** Its answer is `{"ok":true,"pid":N}` or an error message. */
const maxReplyBytes = 64 * 1024;

export interface WarmTakeRequest {
  flags: ShimFlags;
  bundle: string;
  socket: string;
  stdin: Uint8Array;
  serverScript: string;
}

/** Whether a warm server now listens on `req.socket` for this pod. */
export async function handOverToWarmServer(req: WarmTakeRequest): Promise<boolean> {
  if (process.env.KATA_TS_POOL === "off") return false;
  let build: string;
  try {
    build = shimBuildKey(req.serverScript);
  } catch {
    return false;
  }
  const res = await poolCall(poolPaths().socket, { op: "shim", build }, askDeadlineMs).catch(() => undefined);
  if (res?.ok !== true || res.shim === undefined) return false;
  const { pid, socket } = res.shim;
  // Before it runs anything of the pod: out of the pool's cgroup and refill priority.
  await joinThisStartsPlace(pid).catch(() => undefined);
  const msg: WarmHandOver = {
    v: WARM_HANDOVER_VERSION,
    namespace: req.flags.namespace,
    id: req.flags.id,
    address: req.flags.address,
    publishBinary: req.flags.publishBinary,
    debug: req.flags.debug,
    bundle: req.bundle,
    socket: req.socket,
    stdin: Buffer.from(req.stdin).toString("base64"),
    env: Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined)),
    startAt: Math.round(performance.timeOrigin),
  };
  const reply = (await callJsonLine(socket, msg, { peer: `the warm shim server at ${socket}`, maxBytes: maxReplyBytes, timeoutMs: handOverDeadlineMs }).catch(() => undefined)) as WarmReply | undefined;
  return reply?.ok === true && reply.pid === pid;
}

/**
 * This process's cgroups (every hierarchy), nice value (every thread of the server) and
 * oom_score_adj, for the warm server: what a server spawned by this `start` would have inherited.
 */
async function joinThisStartsPlace(pid: number): Promise<void> {
  const [dirs, oom] = await Promise.all([cgroupDirsOf(process.pid), readFile("/proc/self/oom_score_adj", "utf8"), reniceThreads(pid, getPriority(0))]);
  await Promise.all([
    ...dirs.map((d) => writeFile(join(d, "cgroup.procs"), String(pid)).catch(() => undefined)),
    // Raising is always allowed; lowering needs CAP_SYS_RESOURCE below the process's minimum.
    writeFile(`/proc/${pid}/oom_score_adj`, oom.trim()).catch(() => undefined),
  ]);
}
