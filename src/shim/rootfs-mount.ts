// containerd hands the shim a container's root file system as mounts (usually one overlay) to be
// mounted on <bundle>/rootfs, as the runc shim does; the sandbox layer then shares that directory
// with the guest. Unmounting is idempotent.
import { run } from "../util/exec.js";
import type { RootfsMount } from "./pod-port.js";
import { mountsUnder, unmountAll } from "../sandbox/mounts.js";

export async function mountRootfs(mounts: readonly RootfsMount[], target: string): Promise<void> {
  for (const m of mounts) {
    const args = ["-t", m.type];
    if (m.options.length > 0) args.push("-o", m.options.join(","));
    await run("mount", [...args, m.source, target], { timeoutMs: 30_000 });
  }
}

export async function unmountRootfs(target: string): Promise<void> {
  if ((await mountsUnder(target)).length > 0) await unmountAll(target);
}
