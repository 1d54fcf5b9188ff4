// `containerd-shim-kata-ts-v2 ... -bundle PATH delete`: containerd runs this when the shim died or
// cannot be reached. Clean up what the dead shim left (its pod's VM, helpers, state; the rootfs
// mount) and print only a serialized DeleteResponse. 137 = killed, like the runc shim reports.
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { DeleteResponseSchema } from "../protocol/gen/containerd/task/v2/shim_pb.js";
import { run } from "../util/exec.js";
import { KataError } from "../util/errors.js";
import { groupIdOf, pathOfUri } from "./address.js";
import type { ShimFlags } from "./flags.js";
import { readSpec } from "./oci-spec.js";
import type { ShimEntry } from "./run.js";
import { shimLogger } from "./shim-log.js";
import { isListening } from "./start.js";

export async function deleteAction(flags: ShimFlags, loadPodFactory: ShimEntry["loadPodFactory"]): Promise<Uint8Array> {
  const bundle = flags.bundle || process.cwd();
  if (flags.id === "") throw new KataError("INVALID_ARGUMENT", "delete needs -id");
  const annotations = (await readSpec(bundle).catch(() => undefined))?.annotations;
  const group = groupIdOf(flags.id, annotations);
  if (group === flags.id) {
    // This id owned a pod: nothing of it may survive its shim.
    await (await loadPodFactory(shimLogger({ debug: flags.debug, id: flags.id }))).cleanupPod(flags.id);
    await removeDeadSocket(bundle);
  }
  await unmountRootfs(join(bundle, "rootfs"));
  return toBinary(DeleteResponseSchema, create(DeleteResponseSchema, { exitStatus: 137, exitedAt: timestampFromDate(new Date()) }));
}

/** The dead shim's socket file, if nothing answers on it any more. */
async function removeDeadSocket(bundle: string): Promise<void> {
  const uri = await readFile(join(bundle, "address"), "utf8").catch(() => "");
  const path = pathOfUri(uri.trim());
  if (path !== "" && !(await isListening(path))) await rm(path, { force: true });
}

async function unmountRootfs(path: string): Promise<void> {
  const mountinfo = await readFile("/proc/self/mountinfo", "utf8");
  // Field 5 is the mount point (octal-escaped); unmount the topmost first.
  const mounted = mountinfo.split("\n").filter((line) => line.split(" ")[4] === path);
  for (let i = 0; i < mounted.length; i++) await run("umount", [path], { timeoutMs: 10_000 });
}
