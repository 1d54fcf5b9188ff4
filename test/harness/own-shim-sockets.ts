// Which shim sockets in /run/containerd/s a harness instance made. containerd 1.6 puts every
// shim's socket there, named sha256(<containerd address>/<namespace>/<id>), whatever its --state
// says, and other engineers' containerds use the same directory at the same time: a socket is this
// instance's only if its name derives from this instance's containerd address and a task id it
// ran, or if one of its shims or bundles named it. The ids and names come from what the instance
// leaves in its own dir: containerd's log (shim ids, bundle paths, and the kata-ts shim's own
// "shim serving" lines, which containerd copies from the shim's log) and the bundles' `address`
// files still present.
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { listShimSockets, SHIM_SOCKET_DIR } from "./shim-sockets.js";

const TASK_DIR = "io.containerd.runtime.v2.task";

function socketName(address: string, namespace: string, id: string): string {
  return join(SHIM_SOCKET_DIR, createHash("sha256").update(join(address, namespace, id)).digest("hex"));
}

/** Socket paths a containerd log and a state dir attribute to the instance at `address`. */
export async function attributedShimSockets(address: string, logPath: string, stateDir: string): Promise<Set<string>> {
  const out = new Set<string>();
  const log = await readFile(logPath, "utf8").catch(() => "");
  for (const m of log.matchAll(/\/run\/containerd\/s\/[0-9a-f]{64}/g)) out.add(m[0]);
  const namespaces = new Set(["k8s.io", "default"]);
  const ids = new Set<string>();
  for (const m of log.matchAll(new RegExp(`${TASK_DIR}/([^/\\s"\\\\]+)/([^/\\s"\\\\]+)`, "g"))) {
    namespaces.add(m[1] as string);
    ids.add(m[2] as string);
  }
  for (const m of log.matchAll(/\bnamespace=("?)([\w.-]+)\1/g)) namespaces.add(m[2] as string);
  for (const m of log.matchAll(/\bid=("?)([\w.-]+)\1/g)) ids.add(m[2] as string);
  for (const id of ids) for (const ns of namespaces) out.add(socketName(address, ns, id));
  // Bundles still there (a run that died, or a task containerd never deleted) name their socket.
  const tasks = join(stateDir, TASK_DIR);
  for (const ns of await readdir(tasks).catch(() => [] as string[])) {
    for (const id of await readdir(join(tasks, ns)).catch(() => [] as string[])) {
      out.add(socketName(address, ns, id));
      const uri = (await readFile(join(tasks, ns, id, "address"), "utf8").catch(() => "")).trim();
      if (uri.startsWith(`unix://${SHIM_SOCKET_DIR}/`)) out.add(uri.slice("unix://".length));
    }
  }
  return out;
}

/** The attributed sockets that exist now. */
export async function ownShimSockets(address: string, logPath: string, stateDir: string): Promise<string[]> {
  const mine = await attributedShimSockets(address, logPath, stateDir);
  return (await listShimSockets()).filter((p) => mine.has(p));
}
