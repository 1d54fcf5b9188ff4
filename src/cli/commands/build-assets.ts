// kata-ts build-assets: build (or, with --if-stale, refresh only when needed) the guest kernel,
// initramfs and rootfs image in the assets directory.
import { parseArgs } from "node:util";
import { loadConfig } from "../../config/index.js";
import { buildGuestAssets, ensureGuestAssets, kernelSourceFor } from "../../guest/build.js";
import { KataError } from "../../util/errors.js";

export async function run(argv: string[]): Promise<number> {
  let values: { dir?: string; "if-stale"?: boolean; "no-snapshot"?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({ args: argv, options: { dir: { type: "string" }, "if-stale": { type: "boolean" }, "no-snapshot": { type: "boolean" }, help: { type: "boolean", short: "h" } } }));
  } catch (err) {
    throw new KataError("INVALID_ARGUMENT", `build-assets: ${(err as Error).message}`);
  }
  if (values.help === true) {
    process.stdout.write("usage: kata-ts build-assets [--dir DIR] [--if-stale] [--no-snapshot]\n\n  --dir DIR      where to write (default $KATA_TS_ASSETS_DIR or /var/lib/kata-ts/assets)\n  --if-stale     build only when missing or built from other inputs\n  --no-snapshot  skip the agent's V8 snapshot (no build VM; byte-reproducible rootfs; slower agent start)\n");
    return 0;
  }
  const log = (line: string) => process.stderr.write(`kata-ts build-assets: ${line}\n`);
  const { config, source } = await loadConfig();
  log(`guest kernel: ${config.guest.kernel} (from ${source})`);
  const opts = { ...(values.dir === undefined ? {} : { dir: values.dir }), snapshot: values["no-snapshot"] !== true, kernelSource: kernelSourceFor(config.guest.kernel) };
  const assets = values["if-stale"] === true ? await ensureGuestAssets(log, opts) : await buildGuestAssets({ ...opts, log });
  const a = assets.manifest.artifacts;
  process.stdout.write(
    [
      `kernel  ${assets.kernelPath} (${assets.kernelRelease}, ${a.kernel.size} bytes)`,
      `initrd  ${assets.initrdPath ?? "-"} (${a.initrd?.size ?? 0} bytes)`,
      `rootfs  ${assets.rootfsPath} (${assets.rootfsFormat}, ${a.rootfs.size} bytes)`,
      `cmdline ${assets.kernelCmdline.join(" ")}`,
    ].join("\n") + "\n",
  );
  return 0;
}
