// Warm shim servers (docs/shim.md "Warm servers"): the pool daemon keeps `warm` shim servers
// started and loaded; a pod's `start` takes one and hands it what it would have given a fresh
// `serve`. This module is what both sides agree on: which build a server is (a warm server only
// serves a `start` of the very same shim build and KATA_TS_* environment), and the hand-over
// message sent on the warm server's control socket: one JSON line each way.
import { createHash } from "node:crypto";
import { statSync } from "node:fs";

/** Bumped when the hand-over message changes meaning. */
export const WARM_HANDOVER_VERSION = 1;

/** What `start` sends the warm server it took. */
export interface WarmHandOver {
  v: number;
  namespace: string;
  id: string;
  address: string;
  publishBinary: string;
  debug: boolean;
  /** The pod's bundle dir: the server's cwd, and its `log` FIFO becomes the server's stderr. */
  bundle: string;
  /** The pod's shim socket the server listens on. */
  socket: string;
  /** `start`'s stdin (the runtime options, a protobuf Any), base64. */
  stdin: string;
  /** The environment containerd gave `start`. */
  env: Record<string, string>;
  /** When `start` began (epoch ms), for the start-up timeline in the log. */
  startAt: number;
}

/** The warm server's answer: it listens on the pod's socket, or it could not (then `start` spawns a server). */
export type WarmReply = { ok: true; pid: number } | { ok: false; error: string };

/**
 * The build a shim server runs, as `start` and the daemon each see it: the entry script (path,
 * size, mtime, inode), the node binary, and every KATA_TS_* setting (state and assets dirs, log
 * level...), which the daemon's validated configuration and module constants depend on. A `start`
 * of another build (an upgrade, an A/B build beside this one) gets no warm server.
 */
export function shimBuildKey(script: string, env: NodeJS.ProcessEnv = process.env): string {
  const st = statSync(script);
  const kataEnv = Object.keys(env)
    .filter((k) => k.startsWith("KATA_TS_") && !k.startsWith("KATA_TS_SHIM_"))
    .sort()
    .map((k) => `${k}=${env[k] ?? ""}`);
  return createHash("sha256")
    .update(JSON.stringify([script, st.size, st.mtimeMs, st.ino, process.execPath, process.version, kataEnv]))
    .digest("hex")
    .slice(0, 32);
}

/** Whether a parsed line is a hand-over this build understands. */
export function isWarmHandOver(m: unknown): m is WarmHandOver {
  if (typeof m !== "object" || m === null) return false;
  const o = m as Record<string, unknown>;
  const strings = ["namespace", "id", "address", "publishBinary", "bundle", "socket", "stdin"];
  return o.v === WARM_HANDOVER_VERSION && strings.every((k) => typeof o[k] === "string") && typeof o.debug === "boolean" && typeof o.startAt === "number" && typeof o.env === "object" && o.env !== null;
}
