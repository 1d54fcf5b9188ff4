// The Debian "cloud" flavour kernel (linux-image-*-cloud-amd64): small, virtio drivers as
// modules, PVH-capable. Downloaded with apt (the machine's ordinary package client), unpacked with
// dpkg -x; the bzImage is turned into an ELF vmlinux for PVH boot.
import { mkdir, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { run, tryRun } from "../../util/exec.js";
import { KataError } from "../../util/errors.js";
import { extractVmlinux } from "./bzimage.js";
import type { KernelArtifacts, KernelIdentity, KernelSource } from "./source.js";

const META_PACKAGE = "linux-image-cloud-amd64";

/** The versioned package the meta package depends on, from `apt-cache depends` output. */
export function parseDependsTarget(output: string): string | undefined {
  const m = /Depends:\s+(linux-image-[0-9][^\s]*-cloud-amd64)\b/.exec(output);
  return m?.[1];
}

/** The candidate version from `apt-cache policy` output. */
export function parseCandidate(output: string): string | undefined {
  const m = /Candidate:\s+(\S+)/.exec(output);
  return m?.[1] === "(none)" ? undefined : m?.[1];
}

/** The release (uname -r) from a linux-image package name. */
export function releaseFromPackage(pkg: string): string {
  return pkg.replace(/^linux-image-/, "");
}

export class DebianCloudKernel implements KernelSource {
  async identify(log: (line: string) => void): Promise<KernelIdentity> {
    let pkg = await this.lookup();
    if (pkg === undefined) {
      log("apt-cache knows no cloud kernel yet: running apt-get update");
      await run("apt-get", ["update"], { timeoutMs: 300_000 });
      pkg = await this.lookup();
    }
    if (pkg === undefined) {
      throw new KataError("NOT_FOUND", `apt-cache depends ${META_PACKAGE} names no linux-image-*-cloud-amd64 package; check the apt sources`);
    }
    const policy = await run("apt-cache", ["policy", pkg.name]);
    const version = parseCandidate(policy.stdout);
    if (version === undefined) throw new KataError("NOT_FOUND", `apt has no candidate version of ${pkg.name}`);
    return { source: "debian-cloud", package: pkg.name, version };
  }

  private async lookup(): Promise<{ name: string } | undefined> {
    const out = await tryRun("apt-cache", ["depends", META_PACKAGE]);
    const name = out === undefined ? undefined : parseDependsTarget(out.stdout);
    return name === undefined ? undefined : { name };
  }

  async fetch(workDir: string, log: (line: string) => void): Promise<KernelArtifacts> {
    const id = await this.identify(log);
    const release = releaseFromPackage(id.package);
    const debDir = join(workDir, "debs");
    await mkdir(debDir, { recursive: true });
    const deb = await this.download(debDir, id, log);
    const root = join(workDir, `kernel-${id.version}`);
    await rm(root, { recursive: true, force: true });
    await mkdir(root, { recursive: true });
    await run("dpkg", ["-x", deb, root], { timeoutMs: 120_000 });
    const bzImage = join(root, "boot", `vmlinuz-${release}`);
    await stat(bzImage).catch((err: unknown) => {
      throw new KataError("NOT_FOUND", `${id.package} has no /boot/vmlinuz-${release}`, { cause: err });
    });
    const vmlinuxPath = join(root, "vmlinux");
    await extractVmlinux(bzImage, vmlinuxPath);
    log(`kernel ${release} (${id.package} ${id.version}) unpacked`);
    return { ...id, release, vmlinuxPath, modulesRoot: root, rootDevice: "virtio-blk" };
  }

  /** apt-get download into debDir, unless that exact version is already there. */
  private async download(debDir: string, id: KernelIdentity, log: (line: string) => void): Promise<string> {
    // Debian file names escape ':' in epochs as %3a.
    const want = `${id.package}_${id.version.replace(/:/g, "%3a")}_amd64.deb`;
    if (!(await readdir(debDir)).includes(want)) {
      log(`downloading ${id.package} ${id.version}`);
      await run("apt-get", ["download", `${id.package}=${id.version}`], { cwd: debDir, timeoutMs: 600_000 });
    }
    const path = join(debDir, want);
    await stat(path).catch((err: unknown) => {
      throw new KataError("NOT_FOUND", `apt-get download did not produce ${want} in ${debDir}`, { cause: err });
    });
    return path;
  }
}
