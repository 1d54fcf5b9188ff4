// Builds the shim's single-file bundle (`npm run build` runs this after tsc): esbuild takes the
// compiled entry dist/src/shim/main.js and every module and npm dependency it reaches into one
// CommonJS file. containerd starts the shim twice per pod (`start`, which spawns `serve`) and once
// more per app container; each Node start-up resolving and compiling ~200 ESM files and their npm
// dependencies cost more CPU than the code itself (bench/shim-startup.ts, docs/shim.md).
// CommonJS, not ESM: no module graph to link at start-up. The bundle takes import.meta.url from
// its own file name, so URLs relative to a module (same directory depth) still resolve.
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { KataError } from "../util/errors.js";
import { SHIM_FRONT_NAME, shimBundlePath } from "./bundle-path.js";

const here = dirname(fileURLToPath(import.meta.url));

/**
 * Bundles `entry` (default: the compiled main.js beside this file) into `outfile`, then (for the
 * default) the front entry (front.ts) into its own small file, after the bundle, so that launchers
 * take it as built with it (bundle-path.ts shimLauncherEntryIn).
 */
export async function buildShimBundle(entry = join(here, "main.js"), outfile = shimBundlePath): Promise<void> {
  await bundle(entry, outfile);
  if (entry === join(here, "main.js") && outfile === shimBundlePath) await bundle(join(here, "front.js"), join(here, SHIM_FRONT_NAME));
}

async function bundle(entry: string, outfile: string): Promise<void> {
  const esbuild = await import("esbuild").catch((err: unknown) => {
    throw new KataError("NOT_FOUND", "esbuild is missing (a devDependency): run npm ci in the kata-ts checkout", { cause: err });
  });
  await esbuild.build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    legalComments: "none",
    // No comments and no non-ASCII byte: V8 holds the whole source as a string for the process's
    // life, and one non-ASCII character (two in dependencies' comments) doubles it to two bytes a
    // character (3 MiB of heap instead of 0.8). Identifiers stay, for readable stack traces.
    minifyWhitespace: true,
    charset: "ascii",
    logLevel: "warning",
    define: { "import.meta.url": "__kataTsBundleUrl" },
    banner: { js: "const __kataTsBundleUrl = require(\"node:url\").pathToFileURL(__filename).href;" },
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  buildShimBundle().catch((err: unknown) => {
    process.stderr.write(`build-bundle: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
