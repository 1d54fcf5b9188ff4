// Shared by the stand-in driver tests: a temp root with stand-in guest files (the stand-in checks
// they exist, as a VMM opens them), and a VmConfig pointing at them.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { VmConfig } from "../../src/hypervisor/types.js";

export interface GuestFiles {
  kernel: string;
  initrd: string;
  rootfs: string;
}

export async function guestFiles(root: string): Promise<GuestFiles> {
  const files = { kernel: join(root, "vmlinux"), initrd: join(root, "initrd.cpio"), rootfs: join(root, "rootfs.erofs") };
  for (const f of Object.values(files)) await writeFile(f, "stand-in guest file\n");
  return files;
}

export function standinVmConfig(files: GuestFiles, root: string, id: string, overrides: Partial<VmConfig> = {}): VmConfig {
  return {
    id,
    stateDir: join(root, "vms", id),
    vcpus: 2,
    memoryMiB: 512,
    kernelPath: files.kernel,
    initrdPath: files.initrd,
    rootfsPath: files.rootfs,
    kernelCmdline: ["root=/dev/vda", "rootfstype=erofs", "ro", "init=/sbin/kata-ts-init"],
    accel: "kvm",
    ...overrides,
  };
}
