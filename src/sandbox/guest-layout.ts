// Where one sandbox's files live on the host, and their guest paths: the agent mounts the
// virtio-fs share at GUEST_SHARED_DIR (src/protocol/contract/guest.ts, imported by both sides), so a
// file the host puts at <sandbox state>/shared/X is at GUEST_SHARED_DIR/X in the guest.
import { join } from "node:path";
import { GUEST_SHARED_DIR } from "../protocol/contract/guest.js";
import { sandboxStateDir } from "../util/paths.js";

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
