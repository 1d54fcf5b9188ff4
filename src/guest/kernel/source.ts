// Where the guest kernel comes from: the kernel the project builds itself from Debian's
// linux-source package (project.ts, the default: drivers built in, no initramfs, DAX root) or the
// Debian cloud kernel (debian-cloud.ts: drivers as modules, loaded from an initramfs).

import type { GuestKernelTraits } from "../../hypervisor/types.js";

export type KernelSourceName = "project" | "debian-cloud";

export interface KernelIdentity {
  /** Short name of the source. */
  source: KernelSourceName;
  /** Package (or build) name and version: what makes two builds of the same source differ. */
  package: string;
  version: string;
  /** sha256 of the merged configuration fragments (project builds only). */
  configSha256?: string;
  /** sha256 of the applied patches, in order (project builds with patches only). */
  patchesSha256?: string;
}

export interface KernelArtifacts extends KernelIdentity {
  /** Uncompressed ELF kernel, PVH-bootable. */
  vmlinuxPath: string;
  /** `uname -r` of the kernel. */
  release: string;
  /**
   * The kernel's module tree root (contains lib/modules/<release>/ with modules.dep) when its
   * drivers are modules: the build then makes an initramfs that loads them. Absent for a kernel
   * with everything built in, which mounts its root itself.
   */
  modulesRoot?: string;
  /** How the kernel can reach the root image: virtio-pmem (with DAX) needs nvdimm + pmem built in. */
  rootDevice: "virtio-blk" | "virtio-pmem";
  /** What the host may rely on when it adds kernel parameters (project builds: from the .config and the patches). */
  traits?: GuestKernelTraits;
}

export interface KernelSource {
  /** Resolve which kernel would be used, without fetching it (cheap: for staleness checks). */
  identify(log: (line: string) => void): Promise<KernelIdentity>;
  /** Fetch or build (or reuse a cached build) and unpack the kernel. */
  fetch(workDir: string, log: (line: string) => void): Promise<KernelArtifacts>;
}
