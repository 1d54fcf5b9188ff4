// The files `kata-ts install` puts under its root (default /opt/kata-ts), self-contained so the
// node needs nothing else from this checkout or package:
//   bin/node                         the Node binary that runs the shim (copied from the installer's)
//   bin/containerd-shim-kata-ts-v2   launcher: sets the installed assets dir, loads lib/dist/src/shim
//                                    (its single-file bundle when the build made one)
//   bin/kata-ts                      launcher for the CLI (uninstall from the node itself)
//   lib/                             package.json + lock, compiled dist/src, production node_modules
//   share/assets/                    guest kernel, initrd, rootfs image, manifest.json
//   share/defaults/configuration.toml  the kata-ts configuration the CRI handler names (ConfigPath)
//   .install.json                    what was installed (a digest of all of the above's sources)
// The tree is built beside the root and renamed into place, so a shim starting during an upgrade
// sees the old tree or the new one, never half of each.
import { createHash } from "node:crypto";
import { cp, mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join, relative } from "node:path";
import { run } from "../util/exec.js";
import { KataError } from "../util/errors.js";
import { shimLauncherEntryIn } from "../shim/bundle-path.js";
import { shimShLauncher } from "../shim/start-sh.js";

export const DEFAULT_INSTALL_ROOT = "/opt/kata-ts";
const STAMP = ".install.json";

export interface ArtifactSources {
  /** The kata-ts package root (package.json, dist/, node_modules/, config/). */
  packageRoot: string;
  /** Guest assets dir holding manifest.json (kata-ts build-assets). */
  assetsDir: string;
  /** Node binary copied to bin/node. */
  nodeBinary: string;
}

export interface InstalledLayout {
  root: string;
  shimPath: string;
  cliPath: string;
  nodePath: string;
  assetsDir: string;
  configPath: string;
}

export function installedLayout(root: string): InstalledLayout {
  return {
    root,
    shimPath: join(root, "bin", "containerd-shim-kata-ts-v2"),
    cliPath: join(root, "bin", "kata-ts"),
    nodePath: join(root, "bin", "node"),
    assetsDir: join(root, "share", "assets"),
    configPath: join(root, "share", "defaults", "configuration.toml"),
  };
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** Top-level node_modules entries the runtime needs: package-lock's non-dev packages. */
async function productionModules(packageRoot: string): Promise<string[]> {
  const lock = JSON.parse(await readFile(join(packageRoot, "package-lock.json"), "utf8")) as {
    packages?: Record<string, { dev?: boolean }>;
  };
  return Object.entries(lock.packages ?? {})
    .filter(([k, v]) => k.startsWith("node_modules/") && k.lastIndexOf("node_modules/") === 0 && v.dev !== true)
    .map(([k]) => k);
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(join(e.parentPath, e.name));
  }
  return out.sort();
}

/** Digest of what an install would copy (file names and contents; node and assets by size+mtime). */
async function sourceDigest(src: ArtifactSources, modules: string[]): Promise<string> {
  const h = createHash("sha256");
  for (const f of [...(await filesUnder(join(src.packageRoot, "dist", "src"))), join(src.packageRoot, "package.json")]) {
    h.update(relative(src.packageRoot, f)).update(await readFile(f));
  }
  h.update(modules.join("\n"));
  for (const f of [src.nodeBinary, ...(await filesUnder(src.assetsDir))]) {
    const st = await stat(f);
    h.update(`${f}:${st.size}:${st.mtimeMs}`);
  }
  return h.digest("hex");
}

const overheadJson = (pkg: string): string => join(pkg, "src", "deploy", "manifests", "overhead.json");

/** cp -a: keeps modes and links, and is much faster than fs.cp on trees of many small files. */
async function copyTree(src: string, intoDir: string): Promise<void> {
  await run("cp", ["-a", "--", src, intoDir], { timeoutMs: 300_000 });
}

/**
 * A launcher: the installed node runs `entry`, with the installed guest assets unless overridden.
 * A CommonJS entry (the shim's bundle) is required: import() would scan it for named exports first.
 */
function launcher(layout: InstalledLayout, entry: string): string {
  const path = JSON.stringify(join(layout.root, "lib", entry));
  const fail = `process.stderr.write(${JSON.stringify(`${entry}: `)} + String(err) + "\\n"); process.exitCode = 1;`;
  const load = entry.endsWith(".cjs")
    ? ['import { createRequire } from "node:module";', `try { createRequire(import.meta.url)(${path}); } catch (err) { ${fail} }`]
    : [`import(${path}).catch((err) => { ${fail} });`];
  return [`#!${layout.nodePath}`, "// Written by kata-ts install; removed by kata-ts uninstall.", `process.env.KATA_TS_ASSETS_DIR ??= ${JSON.stringify(layout.assetsDir)};`, ...load, ""].join("\n");
}

/** Install or refresh the tree; returns false when the installed tree already matches the sources. */
export async function installArtifacts(root: string, src: ArtifactSources): Promise<boolean> {
  if (!(await exists(join(src.assetsDir, "manifest.json")))) {
    throw new KataError("NOT_FOUND", `no guest assets in ${src.assetsDir} (manifest.json missing): run kata-ts build-assets first; nothing was changed`);
  }
  if (!(await exists(join(src.packageRoot, "dist", "src", "shim", "main.js")))) {
    throw new KataError("NOT_FOUND", `kata-ts is not compiled in ${src.packageRoot} (dist/src missing): run npm run build first; nothing was changed`);
  }
  const modules = await productionModules(src.packageRoot);
  const digest = await sourceDigest(src, modules);
  const stampPath = join(root, STAMP);
  const old = await readFile(stampPath, "utf8").catch(() => undefined);
  if (old !== undefined && (JSON.parse(old) as { digest?: string }).digest === digest) return false;

  const layout = installedLayout(root);
  const staging = `${root}.kata-ts-new`;
  await rm(staging, { recursive: true, force: true });
  try {
    const lib = join(staging, "lib");
    for (const d of ["bin", "lib/dist", "lib/node_modules", "lib/src/deploy/manifests", "share"]) await mkdir(join(staging, d), { recursive: true });
    await copyTree(join(src.packageRoot, "dist", "src"), join(lib, "dist"));
    // package.json, the lock file and the default config too: lib/ is itself a package the
    // installer can install from (the installer image carries one).
    for (const f of ["package.json", "package-lock.json", join("config", "configuration.toml.example")]) {
      await mkdir(dirname(join(lib, f)), { recursive: true });
      await cp(join(src.packageRoot, f), join(lib, f));
    }
    // Data the compiled code reads from the package (the measured pod overhead).
    await cp(overheadJson(src.packageRoot), overheadJson(lib));
    for (const m of modules) {
      await mkdir(dirname(join(lib, m)), { recursive: true });
      await copyTree(join(src.packageRoot, m), dirname(join(lib, m)));
    }
    await cp(src.nodeBinary, join(staging, "bin", "node"));
    await copyTree(src.assetsDir, join(staging, "share"));
    await rename(join(staging, "share", basename(src.assetsDir)), join(staging, "share", "assets"));
    await mkdir(dirname(join(staging, relative(root, layout.configPath))), { recursive: true });
    await cp(join(src.packageRoot, "config", "configuration.toml.example"), join(staging, relative(root, layout.configPath)));
    // The shim's bundle when the build made one (npm run build), else its tsc output.
    const shimEntry = relative(src.packageRoot, shimLauncherEntryIn(join(src.packageRoot, "dist", "src", "shim")));
    // A sh script: a CRI app container's start is answered without a Node start-up (src/shim/start-sh.ts).
    const shimLauncher = shimShLauncher({ nodePath: layout.nodePath, entry: join(layout.root, "lib", shimEntry), env: { KATA_TS_ASSETS_DIR: layout.assetsDir }, comment: "Written by kata-ts install; removed by kata-ts uninstall." });
    await writeFile(join(staging, "bin", "containerd-shim-kata-ts-v2"), shimLauncher, { mode: 0o755 });
    await writeFile(join(staging, "bin", "kata-ts"), launcher(layout, "dist/src/cli/main.js"), { mode: 0o755 });
    await writeFile(join(staging, STAMP), `${JSON.stringify({ digest, installedAt: new Date().toISOString() }, null, 2)}\n`);
    // Swap: old tree aside, new tree in, old tree gone (running shims keep their open files).
    const aside = `${root}.kata-ts-old`;
    await rm(aside, { recursive: true, force: true });
    if (await exists(root)) await rename(root, aside);
    await rename(staging, root);
    await rm(aside, { recursive: true, force: true });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return true;
}

/** Remove the installed tree (and any staging leftovers of an interrupted install). */
export async function removeArtifacts(root: string): Promise<boolean> {
  const had = await exists(root);
  for (const p of [root, `${root}.kata-ts-new`, `${root}.kata-ts-old`]) await rm(p, { recursive: true, force: true });
  return had;
}
