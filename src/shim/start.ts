// `containerd-shim-kata-ts-v2 ... start`: find or start the pod's shim server and print its
// address. Runs with cwd = bundle, stdin = runtime options (a protobuf Any) or nothing. The server
// is spawned detached, in its own session, with no inherited stdio (containerd waits for start's
// pipes to close), and the socket is listening before we print the address.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KataError } from "../util/errors.js";
import { groupIdOf, socketPath, socketUri } from "./address.js";
import { isListening, startWithoutSpawning } from "./start-light.js";
import { CONFIG_FD_ENV, formatShimFlags, READY_FD_ENV, type ShimFlags } from "./flags.js";
import { serverEnv, serverNodeFlags } from "./server-env.js";
import { readSpec } from "./oci-spec.js";
import { warmAlreadyTried } from "./stdin.js";

const listenDeadlineMs = 10_000;

export { serverEnv, serverMallocEnv, serverNodeFlags } from "./server-env.js";

/** `serverScript` is the entry script this shim was started from, re-executed as `serve`. */
export async function start(flags: ShimFlags, stdin: Uint8Array, serverScript: string, socketDir?: string): Promise<string> {
  // The front entry asked the pool already when it ran first (front.ts): not twice.
  const served = await startWithoutSpawning(flags, stdin, serverScript, socketDir, !warmAlreadyTried());
  if (served !== undefined) return served;
  const bundle = flags.bundle || process.cwd();
  const spec = await readSpec(bundle);
  const path = socketPath(flags.address, flags.namespace, groupIdOf(flags.id, spec.annotations), socketDir);
  // Loaded only to start a server: a CRI app container's `start` (its pod's server listens
  // already) stays a bare Node start-up on the StartContainer path (protobuf alone ~0.1 CPU-s).
  const [{ decodeRuntimeOptionsBytes }, { openBundleLog }] = await Promise.all([import("./runtime-options.js"), import("./bundle-log.js")]);
  const options = decodeRuntimeOptionsBytes(stdin);
  if ((await import("../config/peek.js").then(({ peekShimServer }) => peekShimServer(options.configPath))) === "node") {
    await (await import("./node-server/start-node.js")).startOnNodeServer(flags, bundle, path, options.configPath, serverScript);
  } else await spawnServer(serverScript, flags, bundle, path, options.configPath, openBundleLog);
  const uri = socketUri(path);
  await writeFile(join(bundle, "address"), uri);
  return uri;
}

async function spawnServer(serverScript: string, flags: ShimFlags, bundle: string, path: string, configPath: string, openBundleLog: (bundle: string) => number): Promise<void> {
  const args = [...serverNodeFlags, serverScript, ...formatShimFlags({ ...flags, bundle, socket: path, configPath }), "serve"];
  const logFd = openBundleLog(bundle);
  const child = spawn(process.execPath, args, {
    cwd: bundle,
    detached: true,
    // fd 3 (READY_FD_ENV): the server says "listening" on it, so no poll interval is lost waiting.
    // fd 4 (CONFIG_FD_ENV): the validated configuration, written below while the server starts.
    stdio: ["ignore", "ignore", logFd, "pipe", "pipe"],
    env: { ...serverEnv(process.env, Math.round(performance.timeOrigin)), [READY_FD_ENV]: "3", [CONFIG_FD_ENV]: "4" },
  });
  closeSync(logFd);
  let exited: string | undefined;
  child.once("exit", (code, signal) => {
    exited = signal !== null ? `signal ${signal}` : `status ${code}`;
  });
  child.once("error", (err) => {
    exited = err.message;
  });
  child.unref();
  const readyPipe = child.stdio[3] as (NodeJS.ReadableStream & { destroy?: () => void }) | null;
  // Resolves when the server says it listens, or its end of the pipe closes (it exited, or it is
  // a server that never says).
  const readySignal = new Promise<void>((resolve) => {
    if (readyPipe === null) return resolve();
    readyPipe.once("data", () => resolve());
    readyPipe.once("error", () => resolve());
    readyPipe.once("end", () => resolve());
  });
  try {
    // Validated here, beside the server's start-up on the other core, so that the server never
    // loads the schemas (zod): what it would hold for the pod's life. A server gone already closed the pipe.
    const handOver = child.stdio[4] as NodeJS.WritableStream | null;
    if (handOver !== null) {
      handOver.on("error", () => undefined);
      // Never fails the start: without a hand-over the server loads the configuration itself.
      const prepared = await import("./prepare-config.js").then(({ preparePodConfig }) => preparePodConfig(configPath), () => ({ configPath }));
      handOver.end(JSON.stringify(prepared));
    }
    await waitListening(path, bundle, child, () => exited, readySignal);
  } finally {
    readyPipe?.destroy?.();
  }
}

async function waitListening(path: string, bundle: string, child: ChildProcess, exited: () => string | undefined, readySignal: Promise<void>): Promise<void> {
  const deadline = Date.now() + listenDeadlineMs;
  let wake: Promise<void> | undefined = readySignal.then(() => {
    wake = undefined;
  });
  while (!(await isListening(path))) {
    if (exited() !== undefined) {
      await removeDeadSocket(path);
      throw new KataError("INTERNAL", `shim server exited (${exited()}) before listening on ${path}; see ${join(bundle, "log")}`);
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await waitExited(exited, 2000);
      await removeDeadSocket(path);
      throw new KataError("DEADLINE_EXCEEDED", `shim server did not listen on ${path} within ${listenDeadlineMs} ms; see ${join(bundle, "log")}`);
    }
    // Polled, and woken once by the server's "listening" so that no poll interval is lost.
    await Promise.race([new Promise((r) => setTimeout(r, 20)), ...(wake === undefined ? [] : [wake])]);
  }
}

/**
 * A server that failed to start (killed at the deadline, or exited) may have bound its socket
 * already: nobody else removes it (containerd runs no `delete` for a failed `start`, and the
 * bundle has no address file yet), so it would stay in /run/containerd/s for good.
 */
async function removeDeadSocket(path: string): Promise<void> {
  if (!(await isListening(path))) await rm(path, { force: true });
}

async function waitExited(exited: () => string | undefined, ms: number): Promise<void> {
  for (const end = Date.now() + ms; exited() === undefined && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
}

export { isListening } from "./start-light.js";
