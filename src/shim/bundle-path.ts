// Where the shim's single-file bundle lives: beside the compiled shim (dist/src/shim/), so that
// paths the shim's modules resolve from their own URL (e.g. the CLI the pool owner spawns) land on
// the same files from the bundle as from the tsc output. Built by src/shim/build-bundle.ts.
// No imports beyond node builtins: launchers read these before anything else is loaded.
import { statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const SHIM_BUNDLE_NAME = "containerd-shim-kata-ts-v2.cjs";
/** The front entry's bundle (front.ts): what launchers run; it loads SHIM_BUNDLE_NAME when it must. */
export const SHIM_FRONT_NAME = "containerd-shim-kata-ts-v2-front.cjs";

export const shimBundlePath = fileURLToPath(new URL(SHIM_BUNDLE_NAME, import.meta.url));

/**
 * The script a launcher runs from a compiled shim dir (dist/src/shim): the bundle when it was
 * built after the tsc output it was made from (`npm run build` makes both), else the tsc entry
 * main.js, so a tree recompiled by tsc alone never runs a stale bundle.
 */
export function shimEntryIn(shimDir: string): string {
  const main = join(shimDir, "main.js");
  const bundle = join(shimDir, SHIM_BUNDLE_NAME);
  const mtime = (p: string): number => statSync(p, { throwIfNoEntry: false })?.mtimeMs ?? -1;
  const built = mtime(bundle);
  return built >= 0 && built >= mtime(main) ? bundle : main;
}

/**
 * The script a launcher runs: the front entry when it was built with the bundle the launcher
 * would otherwise run (`npm run build` makes both), else shimEntryIn's choice.
 */
export function shimLauncherEntryIn(shimDir: string): string {
  const entry = shimEntryIn(shimDir);
  if (!entry.endsWith(SHIM_BUNDLE_NAME)) return entry;
  const front = join(shimDir, SHIM_FRONT_NAME);
  const built = statSync(front, { throwIfNoEntry: false })?.mtimeMs ?? -1;
  return built >= (statSync(entry, { throwIfNoEntry: false })?.mtimeMs ?? 0) ? front : entry;
}

/** Whether a command line is a shim server's (`serve`, or the pool's `warm` one), bundled or not. */
export function isShimServerCmdline(argv: readonly string[]): boolean {
  return (argv.includes("serve") || argv.includes("warm")) && argv.some((a) => a.endsWith("/shim/main.js") || a.endsWith(`/shim/${SHIM_BUNDLE_NAME}`));
}

/** Whether a command line is the node-level server's keeper or server (node-server/), bundled or not. */
export function isNodeShimCmdline(argv: readonly string[]): boolean {
  return (argv.includes("node-keeper") || argv.includes("node-server")) && argv.some((a) => a.endsWith("/shim/main.js") || a.endsWith(`/shim/${SHIM_BUNDLE_NAME}`));
}
