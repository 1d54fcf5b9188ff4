// Where the agent keeps things in the guest. The host relies on SHARED_DIR (it names container
// rootfs dirs by their guest path), so src/sandbox/guest-layout.ts repeats it: change both.

/** Mount point of the virtio-fs share (host: /run/kata-ts/<sandbox>/shared). */
export const SHARED_DIR = "/run/kata-ts/shared";
/** Guest-side OCI bundles (tmpfs). */
export const BUNDLE_ROOT = "/run/kata-ts/containers";
/** crun's state (--root). */
export const CRUN_ROOT = "/run/kata-ts/crun";
/** The guest's resolv.conf (/etc/resolv.conf links here in the guest image). */
export const RESOLV_CONF = "/run/resolv.conf";
export const CGROUP_ROOT = "/sys/fs/cgroup";
/** The pod's memory-backed emptyDir volumes: one guest tmpfs each, shared by the containers. */
export const POD_TMPFS_ROOT = "/run/kata-ts/pod-tmpfs";
