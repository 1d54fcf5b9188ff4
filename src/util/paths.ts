// Where kata-ts keeps things on a host. Every path can be moved with an environment variable so
// that tests and private installs never touch the system-wide locations.
import { join } from "node:path";

/** Per-sandbox runtime state (sockets, pids, logs): /run/kata-ts/<sandbox-id>/. */
export function stateRoot(): string {
  return process.env.KATA_TS_STATE_DIR ?? "/run/kata-ts";
}

/** Guest assets (kernel, rootfs image, manifest) built by `kata-ts build-assets`. */
export function assetsDir(): string {
  return process.env.KATA_TS_ASSETS_DIR ?? "/var/lib/kata-ts/assets";
}

/** Host-wide cache (e.g. the KVM boot probe result). */
export function cacheDir(): string {
  return process.env.KATA_TS_CACHE_DIR ?? "/var/cache/kata-ts";
}

/**
 * The huge-page tmpfs that holds pods' guest RAM ([hypervisor.qemu] huge_guest_ram): one mount per
 * node, holding no named files (QEMU unlinks each VM's file at once). Not under the state root, so
 * that tests that move the state root share the node's one mount instead of leaving their own.
 */
export function guestRamDir(): string {
  return process.env.KATA_TS_GUEST_RAM_DIR ?? "/run/kata-ts-guest-ram";
}

export function sandboxStateDir(sandboxId: string): string {
  return join(stateRoot(), sandboxId);
}

/**
 * Block images of container root filesystems (VMMs without virtio-fs): /var/lib/kata-ts/images/<sandbox-id>/,
 * on disk rather than under the state root, which is a tmpfs (RAM) on most hosts.
 */
export function sandboxImagesDir(sandboxId: string): string {
  return join(process.env.KATA_TS_IMAGES_DIR ?? "/var/lib/kata-ts/images", sandboxId);
}
