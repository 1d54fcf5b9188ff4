// How a shim server process runs: its V8 flags and environment. Shared by `start` (which spawns a
// server per pod) and the pool daemon (which keeps warm servers ready, src/pool/warm-shims.ts), so
// that a warm server runs exactly as a freshly spawned one would.
import { SERVER_ENV_SET_ENV, START_AT_ENV } from "./flags.js";

/**
 * V8 flags for the long-lived server: one runs per pod, idle nearly all the time, so its resident
 * memory is what matters. A 1 MiB semi-space (default: grows to 16 MiB and stays committed once
 * the shim has served a while) halves what a busy shim holds (~64 -> ~30 MiB PSS) for no measurable
 * CPU per call (bench/shim-memory.ts, docs/shim.md). On the argv: NODE_OPTIONS accepts some only.
 */
export const serverNodeFlags: readonly string[] = ["--max-semi-space-size=1"];

/**
 * glibc malloc settings for the server (unless containerd's environment sets them): memory freed
 * at the top of the heap goes back to the system above 64 KiB (default 128 KiB, and the threshold
 * rises with every large free) and no padding is kept. What V8 and Node free after start-up
 * (parsing the bundle, compiling) otherwise stays resident for the pod's life: ~2-3 MiB PSS of
 * each idle server (bench/shim-memory.ts, docs/shim.md). glibc reads them at the process's first
 * malloc; the server removes them from its environment so its children (QEMU, virtiofsd) keep
 * their defaults.
 */
export const serverMallocEnv: Readonly<Record<string, string>> = { MALLOC_TRIM_THRESHOLD_: "65536", MALLOC_TOP_PAD_: "0" };

/**
 * `env` plus serverMallocEnv's settings it does not set already, named in SERVER_ENV_SET_ENV so
 * that the process removes them at start (dropOwnMallocEnv) and its children keep glibc's defaults.
 * For a long-lived idle Node process of kata-ts: a shim server, the pool daemon.
 */
export function withOwnMallocEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const added = Object.entries(serverMallocEnv).filter(([k]) => env[k] === undefined);
  return { ...env, ...Object.fromEntries(added), [SERVER_ENV_SET_ENV]: added.map(([k]) => k).join(",") };
}

/** Removes from `env` (process.env) what withOwnMallocEnv added: glibc has read it at the first malloc. */
export function dropOwnMallocEnv(env: NodeJS.ProcessEnv = process.env): void {
  for (const name of (env[SERVER_ENV_SET_ENV] ?? "").split(",")) if (name !== "") delete env[name];
  delete env[SERVER_ENV_SET_ENV];
}

/** The server's environment: start's, plus what only the server process should get (see SERVER_ENV_SET_ENV). */
export function serverEnv(env: NodeJS.ProcessEnv, startAt: number): NodeJS.ProcessEnv {
  return {
    ...withOwnMallocEnv(env),
    // Each stdin FIFO open waits on a thread-pool thread until containerd opens its end.
    UV_THREADPOOL_SIZE: env.UV_THREADPOOL_SIZE ?? "16",
    // When `start` began (its process's time origin), for the server's start-up timeline.
    [START_AT_ENV]: String(startAt),
  };
}

/**
 * The environment a server's children see (QEMU, virtiofsd, the pool daemon): what `start` gave it
 * without the server's own settings. What a fresh server keeps of serverEnv() after its start-up,
 * and what a warm server takes on at its hand-over.
 */
export function serverChildEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = serverEnv(env, 0);
  dropOwnMallocEnv(out);
  delete out[START_AT_ENV];
  return out;
}
