// The kernel modules the guest needs, and the order to load them in. The Debian cloud kernel builds
// virtio, its transports and the filesystems as modules, so the initramfs must insmod them before
// it can see /dev/vda. busybox insmod does not resolve dependencies, so the image carries a
// precomputed load order (dependencies first) taken from depmod's modules.dep.
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { run } from "../util/exec.js";
import { KataError } from "../util/errors.js";

/** Module names the guest loads at boot (dependencies are added from modules.dep). */
export const GUEST_MODULES: readonly string[] = [
  "virtio_mmio", // microvm's transport (devices found through ACPI)
  "virtio_blk", // the rootfs disk
  "erofs", // the rootfs filesystem
  "virtio_console", // virtio-serial: the agent channel
  "virtio_net", // the pod's eth0
  "fuse",
  "virtiofs", // container rootfs shared from the host
  "overlay", // writable layer over shared/read-only trees
];

/** Loaded when the kernel has them; absence is not an error (vsock is optional). */
export const OPTIONAL_MODULES: readonly string[] = ["vmw_vsock_virtio_transport"];

/** modules.dep as a map from module path (relative to the release dir) to its direct deps. */
export function parseModulesDep(text: string): Map<string, string[]> {
  const deps = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const rest = line.slice(colon + 1).trim();
    deps.set(line.slice(0, colon), rest === "" ? [] : rest.split(/\s+/));
  }
  return deps;
}

/** "kernel/fs/fuse/virtiofs.ko.xz" -> "virtiofs"; modprobe treats - and _ alike. */
export function moduleName(path: string): string {
  return basename(path).replace(/\.ko(\.(xz|zst|gz))?$/, "").replace(/-/g, "_");
}

/**
 * The module paths needed for `wanted` (plus `optional` ones that exist), dependencies first:
 * a depth-first post-order walk, so every module comes after everything it needs. Deterministic:
 * follows the order of `wanted`, then of each module's dependency list.
 */
export function loadOrder(deps: Map<string, string[]>, wanted: readonly string[], optional: readonly string[] = []): string[] {
  const byName = new Map<string, string>();
  for (const path of deps.keys()) byName.set(moduleName(path), path);
  const roots: string[] = [];
  for (const name of wanted) {
    const path = byName.get(name.replace(/-/g, "_"));
    if (path === undefined) throw new KataError("NOT_FOUND", `kernel module ${name} is not in modules.dep (built in? then drop it from the list)`);
    roots.push(path);
  }
  for (const name of optional) {
    const path = byName.get(name.replace(/-/g, "_"));
    if (path !== undefined) roots.push(path);
  }
  const order: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (path: string, chain: string[]): void => {
    const s = state.get(path);
    if (s === "done") return;
    if (s === "visiting") throw new KataError("INTERNAL", `module dependency cycle: ${[...chain, path].join(" -> ")}`);
    state.set(path, "visiting");
    for (const dep of deps.get(path) ?? []) visit(dep, [...chain, path]);
    state.set(path, "done");
    order.push(path);
  };
  for (const root of roots) visit(root, []);
  return order;
}

export interface PrunedModules {
  /** Paths relative to lib/modules/<release>/, in load order, all uncompressed .ko. */
  order: string[];
}

/**
 * Copy the needed modules from `srcRoot/lib/modules/<release>` into `dstRoot/lib/modules/<release>`
 * (decompressing .ko.xz/.ko.zst: busybox insmod loads plain .ko only; signatures stripped, see
 * stripModuleSignature), run depmod on the result and
 * write `modules.load`, the load order, one path per line.
 */
export async function pruneModules(srcRoot: string, dstRoot: string, release: string): Promise<PrunedModules> {
  const src = join(srcRoot, "lib", "modules", release);
  const dst = join(dstRoot, "lib", "modules", release);
  await run("depmod", ["-b", srcRoot, release], { timeoutMs: 120_000 });
  const deps = parseModulesDep(await readFile(join(src, "modules.dep"), "utf8"));
  const order: string[] = [];
  for (const rel of loadOrder(deps, GUEST_MODULES, OPTIONAL_MODULES)) {
    const plain = rel.replace(/\.ko\.(xz|zst|gz)$/, ".ko");
    await mkdir(dirname(join(dst, plain)), { recursive: true });
    await decompressModule(join(src, rel), join(dst, plain));
    await writeFile(join(dst, plain), stripModuleSignature(await readFile(join(dst, plain))));
    order.push(plain);
  }
  for (const f of ["modules.order", "modules.builtin", "modules.builtin.modinfo"]) {
    await copyFile(join(src, f), join(dst, f)).catch(() => undefined);
  }
  await run("depmod", ["-b", dstRoot, release], { timeoutMs: 60_000 });
  await writeFile(join(dst, "modules.load"), order.map((p) => `${p}\n`).join(""));
  return { order };
}

const SIGNATURE_MAGIC = Buffer.from("~Module signature appended~\n", "latin1");
/** struct module_signature: algo, hash, id_type, signer_len, key_id_len, pad[3], sig_len (be32). */
const SIGNATURE_INFO_LENGTH = 12;

/**
 * The module without its appended signature (unchanged when it has none). The guest kernel does
 * not enforce signatures (CONFIG_MODULE_SIG_FORCE is off; the initramfs comes from the host like
 * the kernel does) and checking one per module cost about 0.1-0.3 s of boot under TCG. The kernel
 * logs once that it is "tainted" by an unsigned module.
 */
export function stripModuleSignature(module: Buffer): Buffer {
  if (module.length < SIGNATURE_MAGIC.length + SIGNATURE_INFO_LENGTH) return module;
  if (!module.subarray(module.length - SIGNATURE_MAGIC.length).equals(SIGNATURE_MAGIC)) return module;
  const infoStart = module.length - SIGNATURE_MAGIC.length - SIGNATURE_INFO_LENGTH;
  const sigLength = module.readUInt32BE(infoStart + 8);
  const end = infoStart - sigLength;
  if (end <= 0) throw new KataError("INVALID_ARGUMENT", `module signature length ${sigLength} exceeds the module (${module.length} bytes)`);
  return module.subarray(0, end);
}

async function decompressModule(from: string, to: string): Promise<void> {
  if (from.endsWith(".ko")) return copyFile(from, to);
  // xz and gzip decompress in place (FILE.xz -> FILE); zstd can name its output.
  const ext = from.slice(from.lastIndexOf("."));
  if (ext === ".zst") {
    await run("zstd", ["-d", "-q", "-f", from, "-o", to], { timeoutMs: 60_000 });
    return;
  }
  await copyFile(from, to + ext);
  await run(ext === ".xz" ? "xz" : "gzip", ["-d", "-f", to + ext], { timeoutMs: 60_000 });
}
