// `kata-ts build-assets`: kernel + initramfs + rootfs + manifest.json in assetsDir(). Builds in a
// scratch directory and moves the results into place, manifest last, so a reader never sees a
// half-built set. ensureGuestAssets() rebuilds only when an input changed.
import { createHash } from "node:crypto";
import { copyFile, mkdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { tryRun } from "../util/exec.js";
import { withDirLock } from "../util/dir-lock.js";
import { assetsDir, cacheDir } from "../util/paths.js";
import { bundleAgent, type AgentBundle } from "./agent-bundle.js";
import { loadGuestAssets, type GuestAssets } from "./assets.js";
import { describeError } from "../util/errors.js";
import { writeNewFile } from "./fsutil.js";
import { AGENT_BUNDLE_PATH, AGENT_SNAPSHOT_PATH, ROOT_INIT_PATH, initramfsInit, rootInit } from "./init-scripts.js";
import { buildAgentSnapshotInVm } from "./snapshot.js";
import { buildInitramfs } from "./initramfs.js";
import { DebianCloudKernel } from "./kernel/debian-cloud.js";
import { packElfFile } from "./kernel/elf-pack.js";
import { PROJECT_ROOT_DEVICE, ProjectKernel } from "./kernel/project.js";
import type { KernelArtifacts, KernelIdentity, KernelSource, KernelSourceName } from "./kernel/source.js";
import { describeArtifact, MANIFEST_SCHEMA_VERSION, readManifest, writeManifest, type GuestManifest } from "./manifest.js";
import { GUEST_MODULES, OPTIONAL_MODULES } from "./modules.js";
import { buildErofs, stageRootfs } from "./rootfs.js";

/** Bump when the builder's output changes for the same inputs. */
const BUILDER_VERSION = "4";

export const KERNEL_FILE = "vmlinux";
export const INITRD_FILE = "initrd.cpio";
export const ROOTFS_FILE = "rootfs.erofs";

type RootDevice = KernelArtifacts["rootDevice"];

/**
 * Guest kernel parameters the image needs. root/rootfstype/init are read by the kernel itself (a
 * kernel with its drivers built in) or by the initramfs /init (the Debian kernel). On virtio-pmem
 * the erofs root is mounted with DAX (dax=always fails the mount when DAX is not possible, rather
 * than silently copying the image into the page cache). panic=-1 reboots at once on a panic, so a
 * VMM run with -no-reboot exits instead of hanging; a panic's messages still reach the console
 * under quiet (they are emergencies).
 */
export function guestKernelCmdline(rootDevice: RootDevice): string[] {
  // rootwait on pmem: the nvdimm bus probes its region asynchronously, after the kernel first looks
  // for its root (without it the mount fails with "Cannot open root device pmem0", seen on q35).
  const root = rootDevice === "virtio-pmem" ? ["root=/dev/pmem0", "rootfstype=erofs", "rootflags=dax=always", "rootwait"] : ["root=/dev/vda", "rootfstype=erofs"];
  // quiet: the kernel's console output is emulated byte by byte under TCG; without it a boot to the
  // agent took 8.0 s instead of 6.4 s (medians of 3, loaded host; docs/guest.md). The init prints a
  // line before the agent starts, so boot-stall detection still sees progress.
  // random.trust_cpu=on: seed the kernel's CRNG from RDRAND/RNDR at boot (under TCG QEMU's RDRAND
  // draws from the host's getrandom). Without it node's start blocks in getrandom() until the
  // kernel has gathered entropy by itself, burning guest CPU in its jitter loop: QEMU CPU to agent
  // ready 2320 vs 2860 ms (medians of 4 pairs, loaded host; docs/guest.md).
  // dhash_entries/ihash_entries: the dentry and inode hash tables are sized from guest RAM (65536 and
  // 32768 buckets, 768 KiB, at 512 MiB) and zeroed at boot; a pod's guest looks up far fewer
  // names. 8192 and 4096 buckets: guest RAM 0.8 MiB lower after boot, boot CPU within the noise
  // (docs/guest.md).
  // swiotlb=noforce: x86 reserves a 64 MiB DMA bounce buffer at boot (zeroed, so host memory the
  // pod holds) whenever guest RAM reaches above 4 GiB, which q35 does from 2.75 GiB of guest memory,
  // i.e. for pods with memory limits from ~2.25 GiB. Nothing here bounces: the virtio devices do not
  // offer VIRTIO_F_ACCESS_PLATFORM, so the guest gives them guest-physical addresses directly.
  // Guest RAM at agent ready of a 4 GiB VM: 171.2 -> 106.4 MiB (boot.js --memory 4096; docs/density.md).
  // No acpi=off here: it is the VMM's choice (q35 under TCG, for a kernel whose manifest traits
  // say it boots without ACPI and takes the preset APIC timer period: machine.ts
  // tcgDefaultAcpiOff), since microvm needs ACPI to describe its devices (docs/guest.md "Boot time,
  // round 10").
  return [...root, "ro", `init=${ROOT_INIT_PATH}`, "panic=-1", "quiet", "random.trust_cpu=on", "dhash_entries=8192", "ihash_entries=4096", "swiotlb=noforce"];
}

/** The kernel sources by the name configuration.toml's [guest] kernel uses. */
export function kernelSourceFor(name: KernelSourceName): KernelSource {
  return name === "debian-cloud" ? new DebianCloudKernel() : new ProjectKernel();
}

/** Where each kernel source finds its root (see PROJECT_ROOT_DEVICE). */
function rootDeviceOf(kernel: KernelIdentity): RootDevice {
  return kernel.source === "project" ? PROJECT_ROOT_DEVICE : "virtio-blk";
}

/**
 * node flags for the agent in the guest (see docs/guest.md for the measurements). `--jitless`: under
 * TCG every piece of machine code V8 generates in the guest (baseline and optimized JavaScript,
 * regular expressions, IC handlers) is new guest code that QEMU must translate again, and it filled
 * TCG's translation cache: with it the cache can be half the size (docs/density.md). V8 flags are
 * part of the snapshot's check, so the snapshot is built under the same flags (init-scripts.ts).
 * It also turns WebAssembly off, which the agent does not use.
 */
export const AGENT_NODE_ARGS: readonly string[] = ["--jitless"];

/** Debian packages whose files go into the images: their versions are inputs. */
const COMPONENT_PACKAGES = ["nodejs", "busybox-static", "crun", "iproute2", "bsdutils", "util-linux", "socat", "libc6"];

export type Log = (line: string) => void;

export interface BuildOptions {
  dir?: string;
  workDir?: string;
  kernelSource?: KernelSource;
  /** Build the agent's V8 startup snapshot in a build VM (default true; see snapshot.ts). */
  snapshot?: boolean;
  log?: Log;
}

async function componentVersions(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const pkg of COMPONENT_PACKAGES) {
    const r = await tryRun("dpkg-query", ["-W", "-f", "${Version}", pkg]);
    out[pkg] = r?.stdout.trim() || "unknown";
  }
  out["node"] = process.version;
  return out;
}

export function inputsKey(parts: { kernel: KernelIdentity; components: Record<string, string>; agentSha256: string; snapshot?: boolean }): string {
  const material = {
    snapshot: parts.snapshot ?? true,
    builder: BUILDER_VERSION,
    kernel: parts.kernel,
    components: parts.components,
    agent: parts.agentSha256,
    modules: parts.kernel.source === "project" ? [] : [GUEST_MODULES, OPTIONAL_MODULES],
    cmdline: guestKernelCmdline(rootDeviceOf(parts.kernel)),
    nodeArgs: AGENT_NODE_ARGS,
    init: [parts.kernel.source === "project" ? "" : initramfsInit("RELEASE"), rootInit({ nodeArgs: AGENT_NODE_ARGS })],
  };
  return createHash("sha256").update(JSON.stringify(material)).digest("hex");
}

interface Inputs {
  kernel: KernelIdentity;
  components: Record<string, string>;
  bundle: AgentBundle;
  key: string;
}

async function resolveInputs(source: KernelSource, snapshot: boolean, log: Log): Promise<Inputs> {
  const [kernel, components, bundle] = await Promise.all([source.identify(log), componentVersions(), bundleAgent()]);
  return { kernel, components, bundle, key: inputsKey({ kernel, components, agentSha256: bundle.sha256, snapshot }) };
}

export async function buildGuestAssets(opts: BuildOptions = {}): Promise<GuestAssets> {
  const log = opts.log ?? (() => undefined);
  const source = opts.kernelSource ?? kernelSourceFor("project");
  const inputs = await resolveInputs(source, opts.snapshot ?? true, log);
  return withBuildLock(opts, () => buildWith(inputs, source, opts, log));
}

async function buildWith(inputs: Inputs, source: KernelSource, opts: BuildOptions, log: Log): Promise<GuestAssets> {
  const dir = opts.dir ?? assetsDir();
  const workDir = workDirOf(opts);
  await mkdir(workDir, { recursive: true });
  const kernel = await source.fetch(workDir, log);
  const out = join(workDir, "out");
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });

  // Same bytes loaded to the same addresses, without the linker's 2 MiB file padding (elf-pack.ts).
  const packed = await packElfFile(kernel.vmlinuxPath, join(out, KERNEL_FILE));
  log(`kernel: vmlinux segments packed at 4 KiB: ${packed.before} -> ${packed.after} bytes`);
  const cmdline = guestKernelCmdline(kernel.rootDevice);
  let modules: string[] = [];
  if (kernel.modulesRoot !== undefined) {
    const initrd = await buildInitramfs({ workDir, modulesRoot: kernel.modulesRoot, release: kernel.release, out: join(out, INITRD_FILE) });
    modules = initrd.modules;
    log(`initramfs: ${modules.length} modules`);
  } else {
    log("no initramfs: the kernel has its drivers built in and mounts the root itself");
  }
  const initrdPath = kernel.modulesRoot === undefined ? undefined : join(out, INITRD_FILE);
  const rootfs = join(out, ROOTFS_FILE);
  const stage = await stageRootfs({ workDir, agentCode: inputs.bundle.code, nodeArgs: AGENT_NODE_ARGS, out: rootfs });
  await buildErofs(stage, rootfs);
  log(`rootfs: erofs image written (attached as ${kernel.rootDevice})`);
  let snapshot = false;
  if (opts.snapshot ?? true) {
    log("booting the image once to build the agent's V8 snapshot (TCG: may take a minute)");
    try {
      const blob = await buildAgentSnapshotInVm({
        kernelPath: join(out, KERNEL_FILE),
        ...(initrdPath === undefined ? {} : { initrdPath }),
        rootfsPath: rootfs,
        rootfsDevice: kernel.rootDevice,
        kernelCmdline: cmdline,
        workDir,
      });
      await writeNewFile(join(stage, AGENT_SNAPSHOT_PATH), blob);
      await buildErofs(stage, rootfs);
      snapshot = true;
      log(`rootfs: rebuilt with a ${blob.length}-byte agent snapshot`);
    } catch (err) {
      // Only start-up time depends on the snapshot: keep the image without it.
      log(`no agent snapshot (the agent starts from its script): ${describeError(err)}`);
    }
  }

  const manifest: GuestManifest = {
    schemaVersion: MANIFEST_SCHEMA_VERSION,
    inputsKey: inputs.key,
    kernel: {
      source: kernel.source,
      package: kernel.package,
      version: kernel.version,
      release: kernel.release,
      ...(kernel.configSha256 === undefined ? {} : { configSha256: kernel.configSha256 }),
      ...(kernel.patchesSha256 === undefined ? {} : { patchesSha256: kernel.patchesSha256 }),
      ...(kernel.traits === undefined ? {} : { traits: kernel.traits }),
    },
    components: { ...inputs.components, agent: inputs.bundle.version, "agent-bundle-sha256": inputs.bundle.sha256 },
    modules,
    rootfsFormat: "erofs",
    rootfsDevice: kernel.rootDevice,
    kernelCmdline: cmdline,
    agent: { path: AGENT_BUNDLE_PATH, ...(snapshot ? { snapshot: AGENT_SNAPSHOT_PATH } : {}), nodeArgs: [...AGENT_NODE_ARGS] },
    artifacts: {
      kernel: await describeArtifact(out, KERNEL_FILE),
      ...(initrdPath === undefined ? {} : { initrd: await describeArtifact(out, INITRD_FILE) }),
      rootfs: await describeArtifact(out, ROOTFS_FILE),
    },
  };
  await mkdir(dir, { recursive: true });
  for (const f of [KERNEL_FILE, ROOTFS_FILE, ...(initrdPath === undefined ? [] : [INITRD_FILE])]) await moveInto(join(out, f), join(dir, f));
  // A stale initrd beside a manifest that names none would only confuse a reader.
  if (initrdPath === undefined) await rm(join(dir, INITRD_FILE), { force: true });
  await writeManifest(dir, manifest);
  await rm(out, { recursive: true, force: true });
  log(`guest assets ready in ${dir}`);
  return loadGuestAssets(dir);
}

/** rename() when on the same filesystem, copy otherwise; either way replaces atomically. */
async function moveInto(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch {
    await copyFile(from, `${to}.tmp`);
    await rename(`${to}.tmp`, to);
  }
}

/** Build the assets only when missing, damaged (size mismatch) or built from other inputs. */
export async function ensureGuestAssets(log: Log, opts: Omit<BuildOptions, "log"> = {}): Promise<GuestAssets> {
  const dir = opts.dir ?? assetsDir();
  const source = opts.kernelSource ?? kernelSourceFor("project");
  const inputs = await resolveInputs(source, opts.snapshot ?? true, log);
  if ((await staleReason(dir, inputs.key)) === undefined) {
    log(`guest assets in ${dir} are up to date`);
    return loadGuestAssets(dir);
  }
  return withBuildLock(opts, async () => {
    // Whoever held the lock before may just have built exactly these.
    const reason = await staleReason(dir, inputs.key);
    if (reason === undefined) return loadGuestAssets(dir);
    log(`building guest assets: ${reason}`);
    return buildWith(inputs, source, { ...opts, dir }, log);
  });
}

/** One build at a time per work dir: the kernel download and staging dirs are shared. */
function withBuildLock<T>(opts: BuildOptions, fn: () => Promise<T>): Promise<T> {
  return withDirLock(`${workDirOf(opts)}.lock`, "building guest assets", 30 * 60_000, fn);
}

function workDirOf(opts: BuildOptions): string {
  return opts.workDir ?? join(cacheDir(), "guest-build");
}

async function staleReason(dir: string, key: string): Promise<string | undefined> {
  let manifest: GuestManifest;
  try {
    manifest = await readManifest(dir);
  } catch {
    return "no valid manifest";
  }
  if (manifest.inputsKey !== key) return "inputs changed";
  for (const a of Object.values(manifest.artifacts)) {
    if (a === undefined) continue;
    const size = await stat(join(dir, a.file)).then((s) => s.size, () => -1);
    if (size !== a.size) return `${a.file} is missing or has the wrong size`;
  }
  return undefined;
}

