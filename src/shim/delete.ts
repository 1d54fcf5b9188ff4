// `containerd-shim-kata-ts-v2 ... -bundle PATH delete`: containerd runs this when the shim died or
// cannot be reached. Clean up what the dead shim left (its pod's VM, helpers, state; the rootfs
// mount) and print only a serialized DeleteResponse. 137 = killed, like the runc shim reports.
import { spawn } from "node:child_process";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { DeleteResponseSchema } from "../protocol/gen/containerd/task/v2/shim_pb.js";
import { run } from "../util/exec.js";
import { KataError } from "../util/errors.js";
import { groupIdOf, pathOfUri, socketPath } from "./address.js";
import { formatShimFlags, type ShimFlags } from "./flags.js";
import { readSpec } from "./oci-spec.js";
import type { ShimEntry } from "./run.js";
import { shimLogger } from "./shim-log.js";
import { isListening } from "./start.js";

/**
 * containerd gives `delete` 5 s (cleanupTimeout) and then kills it: on a loaded node that cut the
 * clean-up off half-way (VM killed, share still mounted, state dir left) and nobody runs it again.
 * So the work runs in a detached `cleanup` process of its own session, which finishes even when
 * `delete` is killed; `delete` waits for it and reports its failure.
 */
export async function deleteAction(flags: ShimFlags, loadPodFactory: ShimEntry["loadPodFactory"], serverScript?: string): Promise<Uint8Array> {
  if (flags.id === "") throw new KataError("INVALID_ARGUMENT", "delete needs -id");
  if (serverScript === undefined) await cleanupAction(flags, loadPodFactory);
  else await runDetachedCleanup(serverScript, flags);
  return toBinary(DeleteResponseSchema, create(DeleteResponseSchema, { exitStatus: 137, exitedAt: timestampFromDate(new Date()) }));
}

function runDetachedCleanup(serverScript: string, flags: ShimFlags): Promise<void> {
  const bundle = flags.bundle || process.cwd();
  const child = spawn(process.execPath, [serverScript, ...formatShimFlags({ ...flags, bundle }), "cleanup"], { cwd: bundle, detached: true, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => (stderr = (stderr + chunk).slice(-4096)));
  return new Promise((resolve, reject) => {
    child.once("error", (err) => reject(new KataError("INTERNAL", `cannot run the shim's cleanup: ${err.message}`, { cause: err })));
    child.once("close", (code, signal) => {
      if (code === 0) resolve();
      else reject(new KataError("INTERNAL", `the shim's cleanup of ${flags.id} failed (${signal ?? `status ${code}`}): ${stderr.trim()}`));
    });
  });
}

/** What `delete` does, in the detached `cleanup` process (or in-process when no entry script is known). */
export async function cleanupAction(flags: ShimFlags, loadPodFactory: ShimEntry["loadPodFactory"]): Promise<void> {
  const bundle = flags.bundle || process.cwd();
  if (flags.id === "") throw new KataError("INVALID_ARGUMENT", "cleanup needs -id");
  const annotations = (await readSpec(bundle).catch(() => undefined))?.annotations;
  const group = groupIdOf(flags.id, annotations);
  if (group === flags.id) {
    // This id owned a pod: nothing of it may survive its shim.
    await (await loadPodFactory(shimLogger({ debug: flags.debug, id: flags.id }))).cleanupPod(flags.id);
    await removeDeadSocket(bundle, socketPath(flags.address, flags.namespace, group));
  }
  await unmountRootfs(join(bundle, "rootfs"));
}

/**
 * The dead shim's socket file, if nothing answers on it any more: the one the bundle's address
 * file names, else the one this pod's flags give (a start that failed after the server bound its
 * socket wrote no address file).
 */
async function removeDeadSocket(bundle: string, fromFlags: string): Promise<void> {
  const uri = await readFile(join(bundle, "address"), "utf8").catch(() => "");
  const path = pathOfUri(uri.trim()) || fromFlags;
  if (path !== "" && !(await isListening(path))) await rm(path, { force: true });
}

async function unmountRootfs(path: string): Promise<void> {
  const mountinfo = await readFile("/proc/self/mountinfo", "utf8");
  // Field 5 is the mount point (octal-escaped); unmount the topmost first.
  const mounted = mountinfo.split("\n").filter((line) => line.split(" ")[4] === path);
  for (let i = 0; i < mounted.length; i++) await run("umount", [path], { timeoutMs: 10_000 });
}
