import { loadConfig } from "../../config/index.js";
import { ensureGuestAssets, kernelSourceFor } from "../../guest/build.js";
import { installPackages } from "../../host/setup.js";

export async function run(_argv: string[]): Promise<number> {
  const log = (line: string) => process.stderr.write(`kata-ts setup: ${line}\n`);
  const report = await installPackages(log);
  log(report.installed.length === 0 ? "all Debian packages present" : `installed ${report.installed.join(" ")}`);
  // Guest assets need the packages above (kernel package download, mkfs.erofs, busybox, crun).
  const { config } = await loadConfig();
  await ensureGuestAssets(log, { kernelSource: kernelSourceFor(config.guest.kernel) });
  return 0;
}
