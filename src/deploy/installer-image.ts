// The installer image that `kata-ts manifests installer` runs, built from this host as an OCI
// archive (no registry, no Docker). Three layers, the least often changed first, so a new kata-ts
// build changes only the last, small one (what a registry push or a ctr import has to move):
//   1. base     static busybox (/bin/sh, coreutils applets), node with its shared libraries and
//               kubectl in /usr/local/bin
//   2. assets   the guest assets at /var/lib/kata-ts/assets (kata-ts build-assets)
//   3. package  kata-ts at /usr/lib/kata-ts: package.json + lock, bin/, dist/src, the default
//               configuration, overhead.json and production node_modules; the same shape as an
//               installed tree's lib/, so `kata-ts install` in the container installs from it
// The archive's inputs are fingerprinted; an output whose stamp (<output>.json) matches is reused.
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, realpath, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { copyWithMode, installHostFile, mirrorUsrMerge, parseLdd } from "../guest/fsutil.js";
import { HOST_BUSYBOX, stageBusyboxRootfs } from "../images/busybox-rootfs.js";
import { writeLayeredOciArchive } from "../images/oci-image.js";
import { KataError } from "../util/errors.js";
import { run } from "../util/exec.js";
import { findOnPath, pathExists } from "../util/fs.js";
import { assetsDir, cacheDir } from "../util/paths.js";
import { defaultInstallerImageRef, packageVersion } from "./installer-image-ref.js";
import { packageRoot } from "./paths.js";

/** Bump when the staged trees or the layer split change: invalidates reuse of earlier outputs. */
const BUILDER_VERSION = "1";
/** Where the image keeps kata-ts and the guest assets (src/deploy/manifests/installer.ts runs them from there). */
export const IMAGE_PACKAGE_DIR = "/usr/lib/kata-ts";
export const IMAGE_ASSETS_DIR = "/var/lib/kata-ts/assets";
const IMAGE_BIN_DIR = "/usr/local/bin";
const PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** Package files besides dist/src and node_modules that the CLI and `kata-ts install` read. */
const PACKAGE_FILES = ["package.json", "package-lock.json", "config/configuration.toml.example", "src/deploy/manifests/overhead.json"];

export interface InstallerImageSources {
  packageRoot: string;
  assetsDir: string;
  nodeBinary: string;
  kubectl: string;
  busybox: string;
}

export interface BuildInstallerImageOptions {
  /** Archive path; default <cache dir>/images/kata-ts-installer-<version>.tar. */
  output?: string;
  /** Image reference; default localhost/kata-ts/installer:<package version>. */
  ref?: string;
  /** Rebuild even when the output's stamp matches the inputs. */
  force?: boolean;
  sources?: Partial<InstallerImageSources>;
  log?: (line: string) => void;
}

export interface InstallerImage {
  ref: string;
  archivePath: string;
  manifestDigest: string;
  /** Archive size in bytes. */
  size: number;
  /** True when an earlier archive built from the same inputs was kept. */
  reused: boolean;
}

interface Stamp extends Omit<InstallerImage, "reused"> {
  inputsKey: string;
}

export function defaultInstallerImagePath(version = packageVersion()): string {
  return join(cacheDir(), "images", `kata-ts-installer-${version}.tar`);
}


async function resolveSources(s: Partial<InstallerImageSources> = {}): Promise<InstallerImageSources> {
  const kubectl = s.kubectl ?? (await findOnPath("kubectl"));
  if (kubectl === undefined) {
    throw new KataError("NOT_FOUND", "no kubectl on PATH: install one (Debian: apt-get install kubernetes-client) or pass --kubectl PATH");
  }
  const src = { packageRoot: s.packageRoot ?? packageRoot(), assetsDir: s.assetsDir ?? assetsDir(), nodeBinary: s.nodeBinary ?? process.execPath, kubectl, busybox: s.busybox ?? HOST_BUSYBOX };
  if (!(await pathExists(join(src.assetsDir, "manifest.json")))) {
    throw new KataError("NOT_FOUND", `no guest assets in ${src.assetsDir} (manifest.json missing): run kata-ts build-assets first`);
  }
  if (!(await pathExists(join(src.packageRoot, "dist", "src", "cli", "main.js")))) {
    throw new KataError("NOT_FOUND", `kata-ts is not compiled in ${src.packageRoot} (dist/src missing): run npm run build first`);
  }
  return src;
}

/** Top-level node_modules entries the runtime needs: package-lock's non-dev packages. */
async function productionModules(root: string): Promise<string[]> {
  const lock = JSON.parse(await readFile(join(root, "package-lock.json"), "utf8")) as { packages?: Record<string, { dev?: boolean }> };
  return Object.entries(lock.packages ?? {})
    .filter(([k, v]) => k.startsWith("node_modules/") && k.lastIndexOf("node_modules/") === 0 && v.dev !== true)
    .map(([k]) => k)
    .sort();
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() || e.isSymbolicLink()) out.push(join(e.parentPath, e.name));
  }
  return out.sort();
}

/** Shared libraries `binary` loads (none for a static binary, for which ldd exits non-zero). */
async function sharedLibs(binary: string): Promise<string[]> {
  const { stdout } = await run("ldd", [binary], { timeoutMs: 30_000, allowNonZero: true });
  return parseLdd(stdout);
}

/**
 * A digest of everything the image is made of: kata-ts's own files by content (a recompile
 * rewrites them all with new mtimes), the large rest (node, libraries, kubectl, busybox, guest
 * assets, node_modules) by path, size and mtime, as `kata-ts install` does.
 */
async function inputsKey(ref: string, src: InstallerImageSources, modules: string[]): Promise<string> {
  const h = createHash("sha256").update(`${BUILDER_VERSION}\n${ref}\n`);
  const pkg = src.packageRoot;
  const ownFiles = [...PACKAGE_FILES.map((f) => join(pkg, f)), ...(await filesUnder(join(pkg, "bin"))), ...(await filesUnder(join(pkg, "dist", "src")))];
  for (const f of ownFiles) h.update(`${relative(pkg, f)}\n`).update(await readFile(f));
  const big = [src.nodeBinary, ...(await sharedLibs(src.nodeBinary)), src.kubectl, src.busybox, ...(await filesUnder(src.assetsDir))];
  for (const m of modules) big.push(...(await filesUnder(join(pkg, m))));
  for (const f of big) {
    const st = await stat(f);
    h.update(`${f}:${st.size}:${st.mtimeMs}\n`);
  }
  return h.digest("hex");
}

/** cp -a: keeps modes and links, and is much faster than fs.cp on trees of many small files. */
async function copyTree(from: string, intoDir: string): Promise<void> {
  await mkdir(intoDir, { recursive: true });
  await run("cp", ["-a", "--", from, intoDir], { timeoutMs: 300_000 });
}

/** A binary at /usr/local/bin/<name> and the shared libraries it loads at their host paths. */
async function installTool(root: string, binary: string, name: string): Promise<void> {
  await copyWithMode(await realpath(binary), join(root, IMAGE_BIN_DIR, name));
  for (const lib of await sharedLibs(binary)) await installHostFile(root, lib);
}

async function stageBase(root: string, src: InstallerImageSources): Promise<void> {
  await stageBusyboxRootfs(root, src.busybox);
  // /lib64 -> usr/lib64 etc. as on the host, so node's ELF interpreter path resolves.
  await mirrorUsrMerge(root);
  await installTool(root, src.nodeBinary, "node");
  await installTool(root, src.kubectl, "kubectl");
}

async function stagePackage(root: string, src: InstallerImageSources, modules: string[]): Promise<void> {
  const pkg = join(root, IMAGE_PACKAGE_DIR);
  for (const f of PACKAGE_FILES) await copyWithMode(join(src.packageRoot, f), join(pkg, f));
  await copyTree(join(src.packageRoot, "bin"), pkg);
  await copyTree(join(src.packageRoot, "dist", "src"), join(pkg, "dist"));
  for (const m of modules) await copyTree(join(src.packageRoot, m), dirname(join(pkg, m)));
}

async function stageAssets(root: string, src: InstallerImageSources): Promise<void> {
  const dest = join(root, IMAGE_ASSETS_DIR);
  await mkdir(dirname(dest), { recursive: true });
  await run("cp", ["-a", "--", src.assetsDir, dest], { timeoutMs: 300_000 });
}

async function readStamp(path: string): Promise<Stamp | undefined> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as Stamp;
  } catch {
    return undefined;
  }
}

export async function buildInstallerImage(o: BuildInstallerImageOptions = {}): Promise<InstallerImage> {
  const log = o.log ?? (() => undefined);
  const src = await resolveSources(o.sources);
  const ref = o.ref ?? defaultInstallerImageRef();
  const output = o.output ?? defaultInstallerImagePath(packageVersion(src.packageRoot));
  const stampPath = `${output}.json`;
  const modules = await productionModules(src.packageRoot);
  const key = await inputsKey(ref, src, modules);

  const old = await readStamp(stampPath);
  const outSize = await stat(output).then((s) => s.size, () => -1);
  if (o.force !== true && old?.inputsKey === key && old.size === outSize) {
    return { ref, archivePath: output, manifestDigest: old.manifestDigest, size: old.size, reused: true };
  }

  await mkdir(dirname(output), { recursive: true });
  // Staged and written beside the output, then renamed over it: an interrupted build leaves the
  // previous archive (and its stamp) as they were.
  const work = await mkdtemp(join(dirname(output), ".installer-image-"));
  try {
    const layers = [
      { dir: join(work, "base"), createdBy: "kata-ts: busybox, node, kubectl", stage: (d: string) => stageBase(d, src) },
      { dir: join(work, "assets"), createdBy: `kata-ts: guest assets at ${IMAGE_ASSETS_DIR}`, stage: (d: string) => stageAssets(d, src) },
      { dir: join(work, "package"), createdBy: `kata-ts: package at ${IMAGE_PACKAGE_DIR}`, stage: (d: string) => stagePackage(d, src, modules) },
    ];
    for (const l of layers) {
      log(`staging ${l.createdBy.replace(/^kata-ts: /, "")}`);
      await mkdir(l.dir);
      await l.stage(l.dir);
    }
    log("writing the OCI archive");
    const tmp = join(work, "image.tar");
    const archive = await writeLayeredOciArchive(
      {
        ref,
        layers,
        config: {
          Cmd: ["node", join(IMAGE_PACKAGE_DIR, "dist", "src", "cli", "main.js"), "help"],
          Env: [PATH_ENV, `KATA_TS_ASSETS_DIR=${IMAGE_ASSETS_DIR}`],
          WorkingDir: "/",
          Labels: { "org.opencontainers.image.title": "kata-ts installer", "org.opencontainers.image.version": packageVersion(src.packageRoot) },
        },
        // Most of the bytes are binaries and a compressed rootfs image: level 1 is a few per cent
        // larger than 6 and several times faster.
        gzipLevel: 1,
      },
      tmp,
    );
    await rename(tmp, output);
    const stamp: Stamp = { ref, archivePath: output, manifestDigest: archive.manifestDigest, size: archive.size, inputsKey: key };
    await writeFile(stampPath, `${JSON.stringify(stamp, null, 2)}\n`);
    return { ref, archivePath: output, manifestDigest: archive.manifestDigest, size: archive.size, reused: false };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
