// `kata-ts run`: one container in a fresh sandbox (VM), stdio streamed, the container's exit code
// returned, and everything torn down afterwards — also when the caller aborts (Ctrl-C).
import { randomBytes } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { KataError } from "../util/errors.js";
import type { OciSpec } from "../protocol/contract/oci.js";
import { runSpec, type RunSpecOptions } from "./default-spec.js";
import { Sandbox, type SandboxOptions } from "./sandbox.js";

export interface RunOnceOptions {
  /** Either a bundle dir (config.json + rootfs) ... */
  bundle?: string;
  /** ... or a rootfs dir and the spec options (command, env, ...). */
  rootfs?: string;
  spec?: RunSpecOptions;
  openStdin: boolean;
  terminal: boolean;
  sandbox?: Partial<SandboxOptions>;
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  /** Aborting kills the container and tears the sandbox down; run then answers 128+SIGTERM-like codes. */
  signal?: AbortSignal;
  /** Terminal size to start with and to follow (rows, cols). */
  onResizeHook?: (resize: (rows: number, cols: number) => void) => void;
}

export async function loadBundle(dir: string): Promise<{ spec: OciSpec; rootfs: string }> {
  const file = join(dir, "config.json");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new KataError("NOT_FOUND", `cannot read ${file}: a bundle dir holds config.json and the rootfs it names`, { cause: err });
  }
  let spec: OciSpec;
  try {
    spec = JSON.parse(text) as OciSpec;
  } catch (err) {
    throw new KataError("INVALID_ARGUMENT", `${file} is not valid JSON`, { cause: err });
  }
  const root = spec.root?.path ?? "rootfs";
  return { spec, rootfs: isAbsolute(root) ? root : join(dir, root) };
}

async function requireDir(path: string, what: string): Promise<void> {
  const st = await stat(path).catch(() => undefined);
  if (st === undefined) throw new KataError("NOT_FOUND", `${what} ${path} does not exist`);
  if (!st.isDirectory()) throw new KataError("INVALID_ARGUMENT", `${what} ${path} is not a directory`);
}

export async function runOnce(o: RunOnceOptions): Promise<number> {
  let spec: OciSpec;
  let rootfs: string;
  if (o.bundle !== undefined) {
    ({ spec, rootfs } = await loadBundle(o.bundle));
    if (spec.process !== undefined) spec.process.terminal = o.terminal;
  } else {
    if (o.rootfs === undefined || o.spec === undefined || o.spec.args.length === 0) {
      throw new KataError("INVALID_ARGUMENT", "give --bundle DIR, or --rootfs DIR and a command after --");
    }
    rootfs = o.rootfs;
    spec = runSpec({ ...o.spec, terminal: o.terminal });
  }
  await requireDir(rootfs, "rootfs");
  o.signal?.throwIfAborted();

  const id = o.sandbox?.id ?? `run-${randomBytes(6).toString("hex")}`;
  const sb = await Sandbox.create({ ...o.sandbox, id });
  const onAbort = (): void => void sb.destroy().catch(() => undefined);
  o.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    o.signal?.throwIfAborted();
    const ctr = await sb.createContainer({ id: "main", spec, rootfs, openStdin: o.openStdin || o.terminal });
    const proc = await ctr.start();
    o.onResizeHook?.((rows, cols) => void proc.resize(rows, cols).catch(() => undefined));
    const outputs = Promise.all([proc.pumpOutput("stdout", o.stdout), o.terminal ? Promise.resolve(0) : proc.pumpOutput("stderr", o.stderr)]);
    if (o.openStdin) void proc.pumpInput(o.stdin).catch(() => undefined);
    const exit = await proc.wait();
    // Killed by our own teardown after an abort: report the interruption, not the kill.
    o.signal?.throwIfAborted();
    await outputs;
    return exit.status;
  } catch (err) {
    if (o.signal?.aborted) throw new KataError("CANCELLED", "run was interrupted; the sandbox was torn down", { cause: err });
    throw err;
  } finally {
    o.signal?.removeEventListener("abort", onAbort);
    await sb.destroy();
  }
}
