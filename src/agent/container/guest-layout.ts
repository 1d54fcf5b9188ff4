// Where the agent keeps things in the guest. The share's mount point, which the host relies on,
// is GUEST_SHARED_DIR in src/protocol/contract/guest.ts (both sides import it).

/** Guest-side OCI bundles (tmpfs). */
export const BUNDLE_ROOT = "/run/kata-ts/containers";
/** crun's state (--root). */
export const CRUN_ROOT = "/run/kata-ts/crun";
/** The guest's resolv.conf (/etc/resolv.conf links here in the guest image). */
export const RESOLV_CONF = "/run/resolv.conf";
export const CGROUP_ROOT = "/sys/fs/cgroup";
/** The pod's memory-backed emptyDir volumes: one guest tmpfs each, shared by the containers. */
export const POD_TMPFS_ROOT = "/run/kata-ts/pod-tmpfs";
