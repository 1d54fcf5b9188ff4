// Names and rules the host and the guest agent must agree on, in one place both import: where the
// shared file system is mounted in the guest and its virtio-fs tag, the agent's channel names, and
// what counts as a bind mount in an OCI spec.
import type { OciMount } from "./oci.js";

/** Mount point of the virtio-fs share in the guest: a file the host puts at <sandbox>/shared/X is at GUEST_SHARED_DIR/X. */
export const GUEST_SHARED_DIR = "/run/kata-ts/shared";
/** The virtio-fs tag of that share (`mount -t virtiofs TAG DIR`). */
export const SHARED_FS_TAG = "kata-ts-shared";
/** The virtio-serial port the agent serves (QEMU). */
export const AGENT_PORT_NAME = "agent.0";
/** The vsock port the agent serves (Cloud Hypervisor, Firecracker; the number Kata's agent uses). */
export const AGENT_VSOCK_PORT = 1024;

/** A bind mount by type ("bind", "rbind") or by option, as runc and crun read a spec. */
export function isBindMount(m: Pick<OciMount, "type" | "options">): boolean {
  return m.type === "bind" || m.type === "rbind" || (m.options ?? []).some((o) => o === "bind" || o === "rbind");
}
