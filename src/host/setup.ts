// Installs what kata-ts needs on a Debian host. Idempotent: when every package is already
// installed it runs no package manager at all, so a second run takes a moment.
import { access, readFile } from "node:fs/promises";
import { KataError } from "../util/errors.js";
import { run } from "../util/exec.js";
import { findOnPath } from "../util/fs.js";
import { hostPackages } from "./packages.js";

export interface SetupReport {
  installed: string[];
  alreadyPresent: string[];
}

export async function assertDebianRoot(): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new KataError("PERMISSION_DENIED", "kata-ts setup must run as root (it installs Debian packages): run it with sudo");
  }
  const isDebian = await readFile("/etc/debian_version", "utf8").then(() => true, () => false);
  const hasApt = await access("/usr/bin/apt-get").then(() => true, () => false);
  if (!isDebian || !hasApt) {
    throw new KataError(
      "FAILED_PRECONDITION",
      "kata-ts setup supports Debian 12 (bookworm) with apt-get; on another system install these packages by hand: " +
        hostPackages.map((p) => p.name).join(" "),
    );
  }
}

export async function missingPackages(names: readonly string[]): Promise<string[]> {
  // dpkg-query exits non-zero when a package is unknown; what it printed is still the answer.
  const { stdout: text } = await run("dpkg-query", ["-W", "-f=${Package} ${db:Status-Status}\\n", ...names], {
    timeoutMs: 20_000,
    allowNonZero: true,
  });
  const installed = new Set(
    text.split("\n").filter((l) => l.endsWith(" installed")).map((l) => l.split(" ")[0]!.split(":")[0]!),
  );
  return names.filter((n) => !installed.has(n));
}

export async function installPackages(log: (line: string) => void): Promise<SetupReport> {
  await assertDebianRoot();
  const names: string[] = [];
  for (const p of hostPackages) if (p.unlessCommand === undefined || (await findOnPath(p.unlessCommand)) === undefined) names.push(p.name);
  const missing = await missingPackages(names);
  if (missing.length === 0) return { installed: [], alreadyPresent: names };
  log(`installing Debian packages: ${missing.join(" ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  await run("apt-get", ["update", "-q"], { timeoutMs: 10 * 60_000, env });
  await run("apt-get", ["install", "-y", "-q", "--no-install-recommends", ...missing], { timeoutMs: 20 * 60_000, env });
  const still = await missingPackages(missing);
  if (still.length > 0) {
    throw new KataError("INTERNAL", `apt-get finished but these packages are still not installed: ${still.join(" ")}`);
  }
  return { installed: missing, alreadyPresent: names.filter((n) => !missing.includes(n)) };
}
