// The refusal for a pod on a VMM without virtio-fs (Firecracker). kata-ts shares every container's
// root filesystem and volumes with the guest over one virtio-fs share; until container rootfs reach
// such a guest as block devices (docs/hypervisor.md: Firecracker), the pod is refused before
// anything is set up, with this error (RunPodSandbox shows its message).
import { KataError } from "../util/errors.js";

export class NoSharedFsError extends KataError {
  constructor(vmm: string, what: string) {
    super(
      "FAILED_PRECONDITION",
      `${vmm} cannot ${what}: it has no virtio-fs to share container root filesystems and volumes with the guest ` +
        `(kata-ts does not yet attach them as block devices: docs/hypervisor.md); use hypervisor = "qemu" or "cloud-hypervisor"`,
    );
    this.name = "NoSharedFsError";
  }
}
