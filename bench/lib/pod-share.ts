// A boot "as a pod's VM boots": every pod's VM has a virtio-fs share, so its guest RAM is a memfd
// shared with virtiofsd (4 KiB shmem pages). Without one, QEMU backs guest RAM with anonymous
// memory in transparent huge pages, which rounds what the guest touched up to 2 MiB units (up to
// ~4 MiB more "guest RAM" than a pod's VM: docs/density.md). Benches that report a VM's memory
// boot with this empty share so that their figures are a pod's.
import { mkdir } from "node:fs/promises";
import type { VmConfig } from "../../src/hypervisor/types.js";
import { SHARED_FS_TAG } from "../../src/protocol/contract/guest.js";
import { Virtiofsd } from "../../src/sandbox/virtiofsd.js";

export interface PodShare {
  config: VmConfig;
  /** Stops virtiofsd (after the VM: QEMU holds its socket). */
  stop(): Promise<void>;
}

/** Starts a virtiofsd serving an empty directory beside config.stateDir and adds it to config. */
export async function withPodShare(config: VmConfig): Promise<PodShare> {
  const shareDir = `${config.stateDir}-share`;
  await mkdir(shareDir, { recursive: true });
  const socketPath = `${config.stateDir}-vfs.sock`;
  const vfs = await Virtiofsd.start({ sharedDir: shareDir, socketPath, logPath: `${config.stateDir}-virtiofsd.log` });
  return { config: { ...config, sharedFs: { socketPath, tag: SHARED_FS_TAG } }, stop: () => vfs.stop() };
}
