// `start` with `[runtime] shim_server = "node"`: instead of spawning a server for the pod, ask the
// node's keeper (keeper.ts) to serve it, starting the keeper first when none answers. The keeper
// listens on the pod's socket before it answers, so `start` prints the address as it would for a
// server of its own. The keeper outlives this `start`, its pod and containerd: it is started
// detached, in its own session and cgroup (`kata-ts-shim` at the root of every hierarchy).
import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { KataError } from "../../util/errors.js";
import type { ShimFlags } from "../flags.js";
import { serverNodeFlags, withOwnMallocEnv } from "../server-env.js";
import { KEEPER_STOPPING, keeperCall, nodeShimPaths, type NodeShimPaths, type PodRegistration } from "./protocol.js";

const keeperStartMs = 10_000;
/** The keeper answers once the server took the pod (its own deadline is 15 s). */
const serveCallMs = 20_000;

export async function startOnNodeServer(flags: ShimFlags, bundle: string, socket: string, configPath: string, serverScript: string, paths: NodeShimPaths = nodeShimPaths()): Promise<void> {
  // Validated here as for a per-pod server: the server then never loads the schemas for it.
  const prepared = await import("../prepare-config.js").then(({ preparePodConfig }) => preparePodConfig(configPath), () => undefined);
  const pod: PodRegistration = {
    socket,
    flags: { namespace: flags.namespace, id: flags.id, address: flags.address, publishBinary: flags.publishBinary, bundle, debug: flags.debug, configPath },
    ttrpcAddress: process.env.TTRPC_ADDRESS ?? "",
    ...(prepared === undefined ? {} : { prepared }),
  };
  // A keeper that answered the status probe may be on its way out (no pod for its idle time):
  // it refuses, or its socket is gone, and the second attempt starts the next keeper.
  for (let attempt = 1; ; attempt++) {
    await ensureKeeper(serverScript, paths);
    const answer = await keeperCall(paths, { op: "serve", pod }, serveCallMs).catch((err: unknown) => {
      if (attempt < 2 && err instanceof KataError && err.code === "UNAVAILABLE") return { ok: false as const, error: KEEPER_STOPPING };
      throw err;
    });
    if (answer.ok) return;
    if (attempt >= 2 || !answer.error.includes(KEEPER_STOPPING)) throw new KataError("UNAVAILABLE", answer.error);
  }
}

async function keeperAnswers(paths: NodeShimPaths): Promise<boolean> {
  return keeperCall(paths, { op: "status" }, 2000).then(
    (a) => a.ok,
    () => false,
  );
}

/** Starts the keeper unless one answers; two `start`s racing are fine (the second keeper finds the first and exits). */
async function ensureKeeper(serverScript: string, paths: NodeShimPaths): Promise<void> {
  if (await keeperAnswers(paths)) return;
  mkdirSync(paths.root, { recursive: true, mode: 0o700 });
  const logFd = openSync(paths.log, "a", 0o600);
  let exited: string | undefined;
  try {
    const child = spawn(process.execPath, [...serverNodeFlags, serverScript, "node-keeper"], { detached: true, cwd: "/", stdio: ["ignore", logFd, logFd], env: withOwnMallocEnv(process.env) });
    child.once("exit", (code, signal) => (exited = signal ?? String(code)));
    child.once("error", (err) => (exited = err.message));
    child.unref();
  } finally {
    closeSync(logFd);
  }
  const deadline = Date.now() + keeperStartMs;
  while (!(await keeperAnswers(paths))) {
    // An exit is fine when another keeper won the race; it answers then.
    if (Date.now() > deadline) throw new KataError("DEADLINE_EXCEEDED", `the node's shim keeper did not answer within ${keeperStartMs} ms${exited === undefined ? "" : ` (it exited: ${exited})`}; see ${paths.log}`);
    await sleep(20);
  }
}
