// The refusal for what needs virtio-fs on a VMM without it (Firecracker): a pod on such a VMM that
// cannot take container root filesystems as block images either, and any bind mount (volumes,
// hostPath, the files the CRI plugin binds in), since host files and directories reach the guest
// only through a virtio-fs share. RunPodSandbox / CreateContainer show its message.
import { KataError } from "../util/errors.js";

const otherVmms = 'run the pod with hypervisor = "qemu" or "cloud-hypervisor"';

export class NoSharedFsError extends KataError {
  constructor(vmm: string, what: string, advice = otherVmms) {
    super("FAILED_PRECONDITION", `${vmm} cannot ${what}: it has no virtio-fs to share host files and directories with the guest; ${advice}`);
    this.name = "NoSharedFsError";
  }
}

/** A bind mount on a VMM without virtio-fs, naming the mount and the ways out. */
export function bindMountRefused(vmm: string, containerId: string, m: { destination: string; source?: string | undefined }, why?: string): NoSharedFsError {
  return new NoSharedFsError(
    vmm,
    `give container ${containerId} the bind mount of ${m.source ?? "(no source)"} at ${m.destination}${why === undefined ? "" : ` (${why})`}`,
    `remove that mount (a volume, hostPath or a file the CRI plugin binds in such as /etc/hosts), use an emptyDir with medium: Memory (a tmpfs in the guest), or ${otherVmms}`,
  );
}
