import { installPackages } from "../../host/setup.js";

export async function run(_argv: string[]): Promise<number> {
  const log = (line: string) => process.stderr.write(`kata-ts setup: ${line}\n`);
  const report = await installPackages(log);
  log(report.installed.length === 0 ? "all Debian packages present" : `installed ${report.installed.join(" ")}`);
  return 0;
}
