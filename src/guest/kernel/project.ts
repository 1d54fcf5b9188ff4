// The kernel kata-ts builds itself: Debian's linux-source package (apt, installed by `kata-ts
// setup`), configured from allnoconfig plus the fragments in config/ (kconfig.ts), built as an
// uncompressed ELF vmlinux (PVH entry) with every driver built in. No modules, so no initramfs: the
// kernel mounts the erofs root itself, from virtio-pmem with DAX. The patches in patches/
// (patches.ts) are applied to the unpacked source. A build is cached under
// cacheDir()/kernel/<source version>-<config hash>[-<patches hash>]/, so only a new source
// package, a changed fragment or a changed patch compiles again.
import { availableParallelism } from "node:os";
import { copyFile, mkdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run, tryRun } from "../../util/exec.js";
import { KataError } from "../../util/errors.js";
import { cacheDir } from "../../util/paths.js";
import { findProjectRoot } from "../agent-bundle.js";
import type { GuestKernelTraits } from "../../hypervisor/types.js";
import { configHash, hostKernelArch, loadFragments, mergeFragments, parseDotConfig, parseFragments, unmetRequests, type ConfigFragment, type KernelArch } from "./kconfig.js";
import { runMakeWithProgress } from "./make-progress.js";
import { addedParameters, applyPatches, loadPatches, patchedFiles, patchesHash, type KernelPatch } from "./patches.js";
import type { KernelArtifacts, KernelIdentity, KernelSource } from "./source.js";

export const SOURCE_PACKAGE = "linux-source-6.1";
/**
 * How the project's kernel reaches its root. virtio-blk: QEMU's microvm machine (7.2 here) has no
 * memory-device support, so a virtio-pmem-pci device on it is realized but its memory is never
 * mapped into guest-physical space and it reports address 0 to the guest; the pmem driver's
 * memremap of [0, size) overlaps RAM and fails (ENXIO from namespace0.0), so /dev/pmem0 never
 * appears (docs/guest.md). The path stays wired for a machine that maps memory devices.
 */
export const PROJECT_ROOT_DEVICE: "virtio-blk" | "virtio-pmem" = "virtio-blk";
const SOURCE_TARBALL = `/usr/src/${SOURCE_PACKAGE}.tar.xz`;
/** Compile steps of this configuration on 6.1 (measured); only used before the first build. */
const ESTIMATED_COMPILE_STEPS = 1480;
/** Generous: 55 min on a 2-core machine shared with six other builds (12.5 CPU-minutes; docs/guest.md). */
const BUILD_TIMEOUT_MS = 150 * 60_000;

/** The fragments live in the source tree (src/guest/kernel/config), which build-assets needs anyway. */
export async function defaultConfigDir(): Promise<string> {
  return join(await findProjectRoot(), "src", "guest", "kernel", "config");
}

/** The patches live beside the fragments (src/guest/kernel/patches). */
export async function defaultPatchesDir(): Promise<string> {
  return join(await findProjectRoot(), "src", "guest", "kernel", "patches");
}

export interface ProjectKernelOptions {
  configDir?: string;
  patchesDir?: string;
  arch?: KernelArch;
  /** Where finished builds are kept (default cacheDir()/kernel). */
  buildCacheDir?: string;
  jobs?: number;
}

interface Resolved {
  id: KernelIdentity;
  fragments: ConfigFragment[];
  patches: KernelPatch[];
}

/** What the unpacked tree's marker file records: the source version and the patches applied to it. */
interface UnpackedTree {
  version: string;
  patchesSha256?: string;
  /** Files the patches changed: a later tree without those patches must rebuild them. */
  patchedFiles: string[];
}

export class ProjectKernel implements KernelSource {
  constructor(private readonly opts: ProjectKernelOptions = {}) {}

  private async resolve(): Promise<Resolved> {
    const arch = this.opts.arch ?? hostKernelArch();
    const fragments = await loadFragments(this.opts.configDir ?? (await defaultConfigDir()), arch);
    parseFragments(fragments); // a malformed fragment fails here, before anything is built
    const patches = await loadPatches(this.opts.patchesDir ?? (await defaultPatchesDir()), arch);
    const patchesSha256 = patchesHash(patches);
    const r = await tryRun("dpkg-query", ["-W", "-f", "${Version}", SOURCE_PACKAGE]);
    const version = r?.stdout.trim() ?? "";
    if (version === "") {
      throw new KataError("FAILED_PRECONDITION", `${SOURCE_PACKAGE} is not installed: run kata-ts setup (or apt-get install ${SOURCE_PACKAGE} build-essential flex bison bc libelf-dev)`);
    }
    return { id: { source: "project", package: SOURCE_PACKAGE, version, configSha256: configHash(fragments), ...(patchesSha256 === undefined ? {} : { patchesSha256 }) }, fragments, patches };
  }

  async identify(): Promise<KernelIdentity> {
    return (await this.resolve()).id;
  }

  async fetch(workDir: string, log: (line: string) => void): Promise<KernelArtifacts> {
    const { id, fragments, patches } = await this.resolve();
    const cache = join(this.opts.buildCacheDir ?? join(cacheDir(), "kernel"), kernelCacheKey(id));
    const cached = await this.cached(cache);
    if (cached !== undefined) {
      log(`kernel ${cached} (${SOURCE_PACKAGE} ${id.version}, config ${id.configSha256?.slice(0, 12)}, ${patches.length} patches): cached build ${cache}`);
      const traits = kernelTraits(await readFile(join(cache, "config"), "utf8"), patches);
      return { ...id, release: cached, vmlinuxPath: join(cache, "vmlinux"), rootDevice: PROJECT_ROOT_DEVICE, traits };
    }
    const src = await this.unpack(workDir, id.version, patches, log);
    const obj = join(workDir, "kernel-obj");
    await mkdir(obj, { recursive: true });
    await this.configure(src, obj, fragments, log);
    // An object tree with a vmlinux in it rebuilds only what a changed option touches: its step
    // count says nothing about a full build, the progress estimate of the next one.
    const incremental = await stat(join(obj, "vmlinux")).then((s) => s.isFile(), () => false);
    const started = Date.now();
    const steps = await runMakeWithProgress({
      cwd: src,
      args: [`O=${obj}`, `-j${this.opts.jobs ?? availableParallelism()}`, "vmlinux"],
      env: reproducibleEnv(),
      expectedSteps: await this.expectedSteps(),
      timeoutMs: BUILD_TIMEOUT_MS,
      onPercent: (p, n) => {
        if (p % 5 === 0) log(`kernel: compiling ${p}% (${n} steps)`);
      },
    });
    const release = (await readFile(join(obj, "include", "config", "kernel.release"), "utf8")).trim();
    log(`kernel ${release}: built in ${Math.round((Date.now() - started) / 1000)} s (${steps} compile steps)`);
    await mkdir(cache, { recursive: true });
    await copyFile(join(obj, ".config"), join(cache, "config"));
    await writeFile(join(cache, "release"), `${release}\n`);
    // The symbol table is not loaded (kallsyms is in the image): stripping saves file size only.
    await run("strip", ["--strip-all", "-o", join(cache, "vmlinux.tmp"), join(obj, "vmlinux")], { timeoutMs: 120_000 });
    await rename(join(cache, "vmlinux.tmp"), join(cache, "vmlinux"));
    if (!incremental) await writeFile(this.stepsFile(), `${steps}\n`);
    log(`kernel: build cached in ${cache}`);
    const traits = kernelTraits(await readFile(join(cache, "config"), "utf8"), patches);
    return { ...id, release, vmlinuxPath: join(cache, "vmlinux"), rootDevice: PROJECT_ROOT_DEVICE, traits };
  }

  private async cached(cache: string): Promise<string | undefined> {
    const release = await readFile(join(cache, "release"), "utf8").catch(() => undefined);
    const ok = await stat(join(cache, "vmlinux")).then((s) => s.isFile(), () => false);
    return ok && release !== undefined ? release.trim() : undefined;
  }

  private stepsFile(): string {
    return join(this.opts.buildCacheDir ?? join(cacheDir(), "kernel"), "compile-steps");
  }

  private async expectedSteps(): Promise<number> {
    const n = Number((await readFile(this.stepsFile(), "utf8").catch(() => "")).trim());
    return Number.isInteger(n) && n > 0 ? n : ESTIMATED_COMPILE_STEPS;
  }

  /**
   * The source tree with the patches applied, unpacked once per package version and patch set (a
   * marker file says it is complete). A new patch set unpacks the source again but keeps the object
   * tree: tar restores the files' old mtimes, so make rebuilds only what a patch touches, and the
   * files the previous set had patched get a fresh mtime so they are rebuilt unpatched.
   */
  private async unpack(workDir: string, version: string, patches: readonly KernelPatch[], log: (line: string) => void): Promise<string> {
    const src = join(workDir, "linux-source");
    const marker = join(src, ".kata-ts-unpacked");
    const want: UnpackedTree = { version, ...(patches.length === 0 ? {} : { patchesSha256: patchesHash(patches) }), patchedFiles: patchedFiles(patches) };
    const have = parseMarker(await readFile(marker, "utf8").catch(() => ""));
    if (have?.version === want.version && have.patchesSha256 === want.patchesSha256) return src;
    await stat(SOURCE_TARBALL).catch((err: unknown) => {
      throw new KataError("NOT_FOUND", `${SOURCE_TARBALL} is missing although ${SOURCE_PACKAGE} is installed; reinstall it (apt-get install --reinstall ${SOURCE_PACKAGE})`, { cause: err });
    });
    log(`kernel: unpacking ${SOURCE_TARBALL}${have?.version === version ? " (the patches changed; the object tree is kept)" : ""}`);
    await rm(src, { recursive: true, force: true });
    // A new source version invalidates every object built from the old one.
    if (have?.version !== version) await rm(join(workDir, "kernel-obj"), { recursive: true, force: true });
    await mkdir(src, { recursive: true });
    await run("tar", ["-xf", SOURCE_TARBALL, "-C", src, "--strip-components=1"], { timeoutMs: 600_000 });
    await applyPatches(src, patches, log);
    if (have?.version === version) {
      const now = new Date();
      for (const f of have.patchedFiles) await utimes(join(src, f), now, now).catch(() => undefined);
    }
    await writeFile(marker, JSON.stringify(want));
    return src;
  }

  /** allnoconfig + fragments, then olddefconfig; fails naming every option Kconfig dropped. */
  private async configure(src: string, obj: string, fragments: ConfigFragment[], log: (line: string) => void): Promise<void> {
    log(`kernel: configuring (allnoconfig + ${fragments.length} fragments: ${fragments.map((f) => f.name).join(", ")})`);
    const merged = join(obj, "kata-ts.fragments.config");
    await writeFile(merged, mergeFragments(fragments));
    const env = reproducibleEnv();
    await run("make", [`O=${obj}`, `KCONFIG_ALLCONFIG=${merged}`, "allnoconfig"], { cwd: src, env, timeoutMs: 300_000 });
    await run("make", [`O=${obj}`, "olddefconfig"], { cwd: src, env, timeoutMs: 300_000 });
    const unmet = unmetRequests(parseFragments(fragments), await readFile(join(obj, ".config"), "utf8"));
    if (unmet.length > 0) {
      throw new KataError("FAILED_PRECONDITION", `the kernel configuration lost ${unmet.length} option(s) the fragments ask for; add what they depend on to a fragment:\n  ${unmet.join("\n  ")}`);
    }
  }
}

/** Fixed build user, host and time: the same source and configuration give the same vmlinux. */
function reproducibleEnv(): NodeJS.ProcessEnv {
  return { ...process.env, KBUILD_BUILD_USER: "kata-ts", KBUILD_BUILD_HOST: "kata-ts", KBUILD_BUILD_TIMESTAMP: "1970-01-01", LC_ALL: "C" };
}

/** cacheDir()/kernel/<this>: the source version, the configuration and (when there are any) the patches. */
export function kernelCacheKey(id: KernelIdentity): string {
  const patches = id.patchesSha256 === undefined ? "" : `-${id.patchesSha256.slice(0, 16)}`;
  return `${id.version}-${(id.configSha256 ?? "").slice(0, 16)}${patches}`;
}

/** The marker of an unpacked tree: JSON now, a bare version string before patches existed. */
function parseMarker(text: string): UnpackedTree | undefined {
  if (text === "") return undefined;
  try {
    const o = JSON.parse(text) as Partial<UnpackedTree>;
    if (typeof o.version === "string") return { version: o.version, ...(typeof o.patchesSha256 === "string" ? { patchesSha256: o.patchesSha256 } : {}), patchedFiles: Array.isArray(o.patchedFiles) ? o.patchedFiles.filter((f) => typeof f === "string") : [] };
  } catch {
    // the older format
  }
  return { version: text.trim(), patchedFiles: [] };
}

/** What the host may rely on about this kernel: its HZ, the parameters its patches add, whether it boots without ACPI. */
export function kernelTraits(dotConfig: string, patches: readonly KernelPatch[]): GuestKernelTraits {
  const c = parseDotConfig(dotConfig);
  const hz = Number(c.get("CONFIG_HZ"));
  if (!Number.isInteger(hz) || hz <= 0) throw new KataError("INTERNAL", `the kernel's .config has no CONFIG_HZ (got ${c.get("CONFIG_HZ") ?? "nothing"})`);
  return { hz, addedParams: addedParameters(patches), bootsWithoutAcpi: c.get("CONFIG_X86_MPPARSE") === "y" && c.get("CONFIG_PVPANIC_PCI") === "y" };
}
