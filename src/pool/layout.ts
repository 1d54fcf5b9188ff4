// Where the pool keeps things: under the state root, one directory per pooled VM. A VM's directory
// holds its share, virtiofsd socket and log, and QEMU's state dir. Whatever lies under vms/ is the
// pool's: a shim takes a VM by renaming its dir out (into the sandbox's state dir), and the
// watchdog kills and removes what is left there when the pool daemon dies.
import { join } from "node:path";
import { stateRoot } from "../util/paths.js";

export function poolRoot(): string {
  return join(stateRoot(), "kata-ts-pool");
}

export interface PoolPaths {
  root: string;
  socket: string;
  pidFile: string;
  vmsDir: string;
}

export function poolPaths(root = poolRoot()): PoolPaths {
  return { root, socket: join(root, "pool.sock"), pidFile: join(root, "pool.pid"), vmsDir: join(root, "vms") };
}

export interface PooledVmPaths {
  dir: string;
  sharedDir: string;
  virtiofsdSocket: string;
  virtiofsdLog: string;
  vmStateDir: string;
}

export function pooledVmPaths(vmsDir: string, vmId: string): PooledVmPaths {
  const dir = join(vmsDir, vmId);
  return {
    dir,
    sharedDir: join(dir, "shared"),
    virtiofsdSocket: join(dir, "vfs.sock"),
    virtiofsdLog: join(dir, "virtiofsd.log"),
    vmStateDir: join(dir, "vm"),
  };
}

/** The netns QEMU starts in; named only until QEMU runs (the watchdog removes a leftover name). */
export function pooledVmNetns(vmId: string): string {
  return `kts-pool-${vmId}`;
}
