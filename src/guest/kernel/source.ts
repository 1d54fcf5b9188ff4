// Where the guest kernel comes from. The Debian cloud kernel is the first source; a kernel the
// project builds itself (drivers built in, no initramfs needed) can replace it behind this interface.

export interface KernelIdentity {
  /** Short name of the source, e.g. "debian-cloud". */
  source: string;
  /** Package (or build) name and version: what makes two builds of the same source differ. */
  package: string;
  version: string;
}

export interface KernelArtifacts extends KernelIdentity {
  /** Uncompressed ELF kernel, PVH-bootable. */
  vmlinuxPath: string;
  /** `uname -r` of the kernel. */
  release: string;
  /** The kernel's module tree root: contains lib/modules/<release>/ (with modules.dep). */
  modulesRoot: string;
}

export interface KernelSource {
  /** Resolve which kernel would be used, without fetching it (cheap: for staleness checks). */
  identify(log: (line: string) => void): Promise<KernelIdentity>;
  /** Fetch (or reuse from workDir) and unpack the kernel. */
  fetch(workDir: string, log: (line: string) => void): Promise<KernelArtifacts>;
}
