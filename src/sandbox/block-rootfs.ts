// A container's root filesystem as a block image, for a VM without virtio-fs (Firecracker): the
// host builds an erofs image of the rootfs directory (rootfs-image.ts), points one of the VM's
// reserved drives at it (Vm.blocks), and asks the agent to mount it with a tmpfs overlay on top
// for the container's writes; crun takes the overlay as the rootfs. Host files cannot follow
// (no share): small regular files are copied in and /dev/shm is a guest tmpfs (copied-files.ts),
// any other bind mount is refused with the mount named. Undone in reverse: the agent's
// RemoveContainer unmounts first, then the drive goes back to its placeholder and the image is
// removed.
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { BlockAttach } from "../hypervisor/types.js";
import type { GuestFileSpec, GuestMountSpec } from "./agent-client.js";
import { copyBindMounts } from "./copied-files.js";
import { DEV_SIZE_OPTION, guestBlockRootfsPaths } from "../protocol/contract/guest.js";
import type { OciSpec } from "../protocol/contract/oci.js";
import { buildRootfsImage } from "./rootfs-image.js";
import type { UndoStack } from "./undo-stack.js";

export interface BlockContainer {
  spec: OciSpec;
  guestRootfs: string;
  /** What the agent mounts before it creates the container, in order. */
  mounts: GuestMountSpec[];
  /** Host files the agent writes into the container's file dir (copied-files.ts). */
  files: GuestFileSpec[];
}

/** The mounts that make `device` (an erofs image of `sizeBytes`) a writable rootfs in the guest. */
export function blockRootfsMounts(containerId: string, device: string, sizeBytes: number): { mounts: GuestMountSpec[]; guestRootfs: string } {
  const p = guestBlockRootfsPaths(containerId);
  return {
    guestRootfs: p.rootfs,
    mounts: [
      { source: device, target: p.image, fstype: "erofs", options: ["ro", `${DEV_SIZE_OPTION}=${sizeBytes}`] },
      // The container's writes live in guest memory (a tmpfs), gone with the container.
      { source: "tmpfs", target: p.rw, fstype: "tmpfs", options: ["mode=0755"] },
      { source: "overlay", target: p.rootfs, fstype: "overlay", options: [`lowerdir=${p.image}`, `upperdir=${p.rw}/upper`, `workdir=${p.rw}/work`] },
    ],
  };
}

export async function attachBlockContainer(
  vmm: string,
  blocks: BlockAttach,
  imagesDir: string,
  id: string,
  spec: OciSpec,
  hostRootfs: string,
  undo: UndoStack,
): Promise<BlockContainer> {
  // Before the image: a refused mount costs no image build.
  const copied = await copyBindMounts(vmm, id, spec);
  await mkdir(imagesDir, { recursive: true });
  const image = await buildRootfsImage(hostRootfs, join(imagesDir, `${id}.erofs`));
  undo.push(`remove rootfs image ${image.path}`, () => rm(image.path, { force: true }));
  const attached = await blocks.attach(image.path);
  undo.push(`detach ${attached.slot}`, () => blocks.detach(attached.slot));
  return { spec: copied.spec, files: copied.files, ...blockRootfsMounts(id, attached.guestDevice, attached.sizeBytes) };
}
