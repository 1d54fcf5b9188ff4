// Where a shim listens, and which shim a container belongs to (containerd runtime/v2/shim/util.go
// SocketAddress): sha256("<containerd address>/<namespace>/<group id>") under /run/containerd/s,
// as `unix://...` (without the scheme containerd 1.6 would treat it as an abstract socket).
// All containers of a pod share the sandbox's group id, hence its shim, hence its VM.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { KataError } from "../util/errors.js";
import { annotations } from "./pod-sizing.js";

/** containerd 1.6 always puts shim sockets here (defaults.DefaultStateDir + "/s"). */
export const shimSocketDir = "/run/containerd/s";

export function socketPath(containerdAddress: string, namespace: string, groupId: string, dir = shimSocketDir): string {
  // path.join cleans like Go's filepath.Join (duplicate and trailing slashes).
  const digest = createHash("sha256").update(join(containerdAddress, namespace, groupId)).digest("hex");
  return join(dir, digest);
}

export function socketUri(path: string): string {
  return `unix://${path}`;
}

/** The path of a `unix://` address (what containerd and `<bundle>/address` carry). */
export function pathOfUri(uri: string): string {
  return uri.startsWith("unix://") ? uri.slice("unix://".length) : uri;
}

/** The id whose shim a container joins: the pod sandbox's for CRI app containers, else its own. */
export function groupIdOf(id: string, specAnnotations: Record<string, string> | undefined): string {
  const ann = specAnnotations ?? {};
  if (ann[annotations.containerType] === "container") {
    const sandboxId = ann[annotations.sandboxId];
    if (sandboxId === undefined || sandboxId === "") {
      throw new KataError("INVALID_ARGUMENT", `container ${id} is a CRI container without annotation ${annotations.sandboxId}`);
    }
    return sandboxId;
  }
  return id;
}
