// `kata-ts check` lines for the VMMs other than QEMU: whether the binary is there, its version, and
// whether it can run guests on this host. Cloud Hypervisor and Firecracker run guests only under
// KVM, so their verdict follows the KVM probe's (src/hypervisor/accel.ts).
import { binaryVersion } from "../hypervisor/rest/validate.js";
import { cloudHypervisorBinary, cloudHypervisorInstallHint } from "../hypervisor/cloud-hypervisor/index.js";
import { firecrackerBinary, firecrackerInstallHint } from "../hypervisor/firecracker/index.js";
import type { Capability } from "./capabilities.js";

export interface VmmPaths {
  cloudHypervisor?: string;
  firecracker?: string;
}

async function kvmOnlyVmm(name: string, binary: string, hint: string, kvm: Capability | undefined): Promise<Capability> {
  const version = await binaryVersion(binary, name, hint).catch(() => undefined);
  if (version === undefined) {
    const anyway = kvm?.status === "ok" ? "" : "; it could not run here anyway: it needs KVM and this host has no usable KVM (see kvm)";
    return { name, status: "absent", detail: `${binary} not found (${hint})${anyway}`, required: false };
  }
  const found = `${name} ${version} (${binary})`;
  switch (kvm?.status) {
    case "ok":
      return { name, status: "ok", detail: `${found}; KVM is usable`, required: false };
    case "unverified":
      return { name, status: "unverified", detail: `${found}; needs KVM, not yet verified on this host (see kvm)`, required: false };
    default:
      return { name, status: "unusable", detail: `${found}; cannot run here: it needs KVM and this host has no usable KVM (see kvm)`, required: false };
  }
}

export function vmmCapabilities(kvm: Capability | undefined, paths: VmmPaths = {}): Promise<Capability[]> {
  return Promise.all([
    kvmOnlyVmm("cloud-hypervisor", paths.cloudHypervisor ?? cloudHypervisorBinary, cloudHypervisorInstallHint, kvm),
    kvmOnlyVmm("firecracker", paths.firecracker ?? firecrackerBinary, firecrackerInstallHint, kvm),
  ]);
}
