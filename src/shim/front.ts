// The shim's front entry, what launchers run when the bundle is built (bundle-path.ts
// shimLauncherEntryIn): a small file that handles, without the shim's 1.1 MB bundle (~35 ms CPU
// to compile), the `start`s on a pod start's path that spawn nothing: an app container's (its pod's
// server listens already) and a pod's served by a warm server (start-light.ts). Everything else
// (`delete`, a `start` that must spawn its server, errors to report) runs the main bundle, as if
// launched directly, with the stdin this entry already read.
import { createRequire } from "node:module";
import { shimBundlePath } from "./bundle-path.js";
import { parseShimArgs } from "./flags.js";
import { readStdin, STDIN_READ_KEY, WARM_TRIED_KEY } from "./stdin.js";
import { startWithoutSpawning } from "./start-light.js";

function runMainBundle(stdin?: Uint8Array): void {
  if (stdin !== undefined) Object.assign(globalThis, { [STDIN_READ_KEY]: stdin, [WARM_TRIED_KEY]: true });
  createRequire(import.meta.url)(shimBundlePath);
}

async function front(): Promise<void> {
  let parsed;
  try {
    parsed = parseShimArgs(process.argv.slice(2));
  } catch {
    return runMainBundle(); // it reports the bad flags
  }
  if (parsed.action !== "start" || parsed.flags.version) return runMainBundle();
  const stdin = await readStdin();
  const uri = await startWithoutSpawning(parsed.flags, stdin, shimBundlePath).catch(() => undefined);
  if (uri === undefined) return runMainBundle(stdin);
  process.stdout.write(uri);
}

void front().catch((err: unknown) => {
  process.stderr.write(`containerd-shim-kata-ts-v2: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
