// Paths both sides agree on. The agent mounts the virtio-fs share at GUEST_SHARED_DIR
// (src/agent/container/guest-layout.ts says the same; change both), so a file the host puts at
// <sandbox state>/shared/X is at GUEST_SHARED_DIR/X in the guest.
import { join } from "node:path";
import { sandboxStateDir } from "../util/paths.js";

export const GUEST_SHARED_DIR = "/run/kata-ts/shared";
export const SHARED_FS_TAG = "kata-ts-shared";

export interface SandboxLayout {
  stateDir: string;
  stateFile: string;
  sharedDir: string;
  vmStateDir: string;
  virtiofsdSocket: string;
  virtiofsdLog: string;
}

export function sandboxLayout(id: string): SandboxLayout {
  const stateDir = sandboxStateDir(id);
  return {
    stateDir,
    stateFile: join(stateDir, "state.json"),
    sharedDir: join(stateDir, "shared"),
    vmStateDir: join(stateDir, "vm"),
    virtiofsdSocket: join(stateDir, "vfs.sock"),
    virtiofsdLog: join(stateDir, "virtiofsd.log"),
  };
}

/** Host and guest paths of one container's directory on the share. */
export function containerShareDirs(layout: SandboxLayout, containerId: string): { host: string; guest: string } {
  return { host: join(layout.sharedDir, "containers", containerId), guest: `${GUEST_SHARED_DIR}/containers/${containerId}` };
}
