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

/**
 * Kernel parameter by which the VMM driver tells the guest where its agent channel is:
 * `kata_ts.agent=vsock:<port>` (Cloud Hypervisor, Firecracker: they offer vsock only). Absent: the
 * virtio-serial port AGENT_PORT_NAME (QEMU).
 */
export const AGENT_CHANNEL_PARAM = "kata_ts.agent";

/**
 * Kernel parameter `kata_ts.warm_up=containers`: once ready, the agent runs one container of its own
 * image through crun (create, start, exec, remove) so that a pod's first container start and exec
 * find crun, its libraries and the agent's code warm (src/agent/container/warm-up.ts). Meant for
 * the VMs the pool boots ahead of their pods (`[factory] warm_up_containers`, default on;
 * docs/containers.md "Warm-up").
 */
export const WARM_UP_PARAM = "kata_ts.warm_up";
export const WARM_UP_CONTAINERS = `${WARM_UP_PARAM}=containers`;

/** Whether a kernel command line (/proc/cmdline) asks the agent for the container warm-up. */
export function wantsContainerWarmUp(cmdline: string): boolean {
  const values = cmdline.split(/\s+/).filter((p) => p.startsWith(`${WARM_UP_PARAM}=`));
  return values.at(-1) === WARM_UP_CONTAINERS;
}

/**
 * Kernel parameter `kata_ts.warm_ip=off`: PrepareSandbox starts no warm `ip -batch -` co-process,
 * so adoption's UpdateNetwork spawns `ip` (docs/network.md "Warm ip"). For A/B measurements
 * (bench/adopt-network.ts) and as a way out should the co-process misbehave on some guest.
 */
export const WARM_IP_OFF = "kata_ts.warm_ip=off";

/** The agent channel a VM offers, as the guest reads it from its kernel command line. */
export type AgentChannel = { kind: "virtio-serial"; portName: string } | { kind: "vsock"; port: number };

/** The kernel parameter for an agent served on vsock `port`. */
export function agentVsockParam(port = AGENT_VSOCK_PORT): string {
  return `${AGENT_CHANNEL_PARAM}=vsock:${port}`;
}

/**
 * The agent channel named on a kernel command line (/proc/cmdline); the last occurrence wins, as
 * for any kernel parameter. A value kata-ts does not know is an error naming it, not a fallback:
 * the agent would otherwise wait on a channel the host never dials.
 */
export function agentChannelFromCmdline(cmdline: string): AgentChannel {
  const values = cmdline.split(/\s+/).filter((p) => p.startsWith(`${AGENT_CHANNEL_PARAM}=`));
  const value = values.at(-1)?.slice(AGENT_CHANNEL_PARAM.length + 1);
  if (value === undefined || value === "virtio-serial") return { kind: "virtio-serial", portName: AGENT_PORT_NAME };
  const m = /^vsock:(\d{1,10})$/.exec(value);
  const port = m === null ? NaN : Number(m[1]);
  if (!Number.isInteger(port) || port < 1 || port > 0xffffffff) {
    throw new Error(`kernel parameter ${AGENT_CHANNEL_PARAM}=${value}: expected "vsock:<port>" (port 1-4294967295) or "virtio-serial"`);
  }
  return { kind: "vsock", port };
}

/**
 * Container root filesystems that reach the guest as block devices (VMMs without virtio-fs:
 * Firecracker) are mounted under GUEST_BLOCK_ROOT/<container id>: the image (read-only erofs), a
 * tmpfs for the container's writes, and the overlay of both that crun takes as the rootfs.
 */
export const GUEST_BLOCK_ROOT = "/run/kata-ts/block";

/**
 * A mount option only kata-ts reads (the agent strips it before mount): `kata-ts.dev-size=<bytes>`
 * on a block device mount means "wait until the device has this size". The host points a
 * placeholder drive at the image while the guest runs, and the guest kernel learns the new
 * capacity asynchronously (a virtio config-change interrupt); mounting before that reads a device
 * of the old size.
 */
export const DEV_SIZE_OPTION = "kata-ts.dev-size";

/** The guest paths of one container's block rootfs. */
export function guestBlockRootfsPaths(containerId: string): { image: string; rw: string; rootfs: string } {
  const dir = `${GUEST_BLOCK_ROOT}/${containerId}`;
  return { image: `${dir}/image`, rw: `${dir}/rw`, rootfs: `${dir}/rootfs` };
}

/**
 * Where the agent writes a container's copied-in host files (CreateContainerRequest.files) on a
 * block rootfs: on the container's own tmpfs, so they go when it is unmounted at RemoveContainer.
 */
export function guestBlockFilesDir(containerId: string): string {
  return `${guestBlockRootfsPaths(containerId).rw}/files`;
}

/** A copied-in file's name: plain, no path separators, not "." or "..". */
export const GUEST_FILE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$/;
/** The most bytes of host files one container may have copied in (the agent checks it too). */
export const GUEST_FILES_LIMIT_BYTES = 1024 * 1024;

/**
 * The guest's cgroup v2 layout, relative to the cgroup root: with AGENT_CGROUP_PARAM the agent runs
 * in AGENT_CGROUP from its first page on (the image's init puts it there: a page stays charged to the
 * cgroup that faulted it in), so that an idle reclaim (ReclaimIdleMemory) compresses the agent's memory and no
 * container's; every container's cgroup sits under CONTAINERS_CGROUP, which never swaps.
 */
export const AGENT_CGROUP = "/kata-agent";
export const CONTAINERS_CGROUP = "/kata-ts";
/**
 * Kernel parameter `kata_ts.agent_cgroup=1`: the image's init starts the agent in AGENT_CGROUP.
 * Only a pod whose agent may be asked to reclaim ([hypervisor.qemu] tcg_idle_reclaim_agent) is
 * booted with it: the memory controller it enables at boot costs every VM ~4 MiB of guest RAM
 * until the pod's first container enables it anyway (docs/density.md).
 */
export const AGENT_CGROUP_PARAM = "kata_ts.agent_cgroup=1";

/**
 * Kernel parameter `kata_ts.zram_algorithm=NAME`: the compressor of the guest's zram swap (a name
 * the kernel offers in /sys/block/zram0/comp_algorithm; default lzo-rle, the kernel's own).
 */
export const ZRAM_ALGORITHM_PARAM = "kata_ts.zram_algorithm";
