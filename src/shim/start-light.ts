// The part of `start` that spawns nothing, and so needs none of the shim's heavier modules (the
// front entry runs it before loading the bundle): the pod's server listens already (a CRI app
// container joining its sandbox's shim), or a warm server from the pool daemon takes the pod
// (warm-take.ts). Undefined when neither: `start` then spawns the server (start.ts).
import { mkdir, writeFile } from "node:fs/promises";
import net from "node:net";
import { dirname, join } from "node:path";
import { KataError } from "../util/errors.js";
import { groupIdOf, socketPath, socketUri } from "./address.js";
import type { ShimFlags } from "./flags.js";
import { readSpec } from "./oci-spec.js";
import { handOverToWarmServer } from "./warm-take.js";

/** The address (written to `<bundle>/address` too) when the pod's server listens now, else undefined. */
export async function startWithoutSpawning(flags: ShimFlags, stdin: Uint8Array, serverScript: string, socketDir?: string, tryWarm = true): Promise<string | undefined> {
  const bundle = flags.bundle || process.cwd();
  if (flags.id === "" || flags.namespace === "") throw new KataError("INVALID_ARGUMENT", "start needs -id and -namespace");
  const spec = await readSpec(bundle);
  const path = socketPath(flags.address, flags.namespace, groupIdOf(flags.id, spec.annotations), socketDir);
  if (!(await isListening(path))) {
    await mkdir(dirname(path), { recursive: true, mode: 0o711 });
    const warm = tryWarm && (await handOverToWarmServer({ flags, bundle, socket: path, stdin, serverScript }).catch(() => false));
    // Not taken, unless it answered too late (then it listens: it is the pod's server).
    if (!warm && !(await isListening(path))) return undefined;
  }
  const uri = socketUri(path);
  await writeFile(join(bundle, "address"), uri);
  return uri;
}

/** Whether a server accepts connections on the unix socket at `path`. */
export function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.createConnection(path);
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}
