// kata-ts's VmConfig rendered as Cloud Hypervisor's VmConfig (the body of PUT /vm.create).
import { agentVsockParam } from "../../protocol/contract/guest.js";
import type { VmConfig } from "../types.js";
import type { ChVmConfig } from "./api-types.js";

/** The guest's vsock CID: each VM has its own vsock device, so every guest can use the first free one. */
export const guestCid = 3;

export type RootImageDevice = "disk" | "pmem";

export interface ChRenderOptions {
  /** "disk": the image is virtio-blk /dev/vda. "pmem": virtio-pmem /dev/pmem0, mapped from the host page cache (DAX). */
  rootImage: RootImageDevice;
  vsockSocketPath: string;
}

/** Kernel parameters this VMM needs: serial console on ttyS0, and no crypto self-tests; the agent on vsock (the only channel it offers). */
export function chKernelParams(): string[] {
  return ["console=ttyS0", "reboot=k", "panic=1", "cryptomgr.notests", agentVsockParam()];
}

const mib = 1024 * 1024;

export function renderChVmConfig(config: VmConfig, opts: ChRenderOptions): ChVmConfig {
  const cmdline = [...chKernelParams(), ...config.kernelCmdline];
  const root = opts.rootImage === "pmem"
    ? { pmem: [{ file: config.rootfsPath, discard_writes: true, id: "rootfs" }] }
    : { disks: [{ path: config.rootfsPath, readonly: true, id: "rootfs" }] };
  return {
    cpus: { boot_vcpus: config.vcpus, max_vcpus: config.vcpus },
    // virtiofsd maps guest RAM: it must be a shared mapping when a share is configured.
    memory: { size: config.memoryMiB * mib, shared: config.sharedFs !== undefined },
    payload: {
      kernel: config.kernelPath,
      cmdline: (opts.rootImage === "pmem" ? cmdline.map((p) => (p === "root=/dev/vda" ? "root=/dev/pmem0" : p)) : cmdline).join(" "),
      ...(config.initrdPath === undefined ? {} : { initramfs: config.initrdPath }),
    },
    ...root,
    ...(config.sharedFs === undefined
      ? {}
      : { fs: [{ tag: config.sharedFs.tag, socket: config.sharedFs.socketPath, num_queues: 1, queue_size: 1024, id: "fs0" }] }),
    ...((config.netDevices?.length ?? 0) === 0
      ? {}
      : { net: (config.netDevices ?? []).map((n, i) => ({ tap: n.tapName, mac: n.mac, id: `net${i}` })) }),
    vsock: { cid: guestCid, socket: opts.vsockSocketPath, id: "vsock0" },
    // The serial console on the VMM's stdout, read into the capped console log (a File grows without limit).
    serial: { mode: "Tty" },
    console: { mode: "Off" },
    pvpanic: true,
  };
}
