// kata-ts's VmConfig as the ordered list of Firecracker pre-boot requests, then InstanceStart.
import { agentVsockParam } from "../../protocol/contract/guest.js";
import type { VmConfig } from "../types.js";
import type { FcBootSource, FcDrive, FcInstanceActionInfo, FcMachineConfiguration, FcNetworkInterface, FcVsock } from "./api-types.js";

export const guestCid = 3;

export interface FcRequest {
  path: string;
  body: FcMachineConfiguration | FcBootSource | FcDrive | FcNetworkInterface | FcVsock | FcInstanceActionInfo;
}

/** Kernel parameters this VMM needs: its serial console, reboot through the keyboard controller, no PCI;
 * the agent on vsock (the only channel it offers). */
export function fcKernelParams(): string[] {
  return ["console=ttyS0", "reboot=k", "panic=1", "pci=off", "cryptomgr.notests", agentVsockParam()];
}

/**
 * Firecracker's guest root is always the image as a read-only virtio-blk drive, /dev/vda (it has no
 * virtio-fs and kata-ts does not wire its pmem device): kernel parameters written for a virtio-pmem
 * root (root=/dev/pmem0, rootflags=dax=always) are turned into the block device's.
 */
export function blockRootParams(params: readonly string[]): string[] {
  return params.flatMap((p) => (p === "root=/dev/pmem0" ? ["root=/dev/vda"] : p === "rootflags=dax=always" ? [] : [p]));
}

/** `slotDrives`: the placeholder drives after the root image (drive-slots.ts), in guest order. */
export function firecrackerRequests(config: VmConfig, vsockSocketPath: string, slotDrives: readonly FcDrive[] = []): FcRequest[] {
  const requests: FcRequest[] = [
    { path: "/machine-config", body: { vcpu_count: config.vcpus, mem_size_mib: config.memoryMiB, smt: false } },
    {
      path: "/boot-source",
      body: {
        kernel_image_path: config.kernelPath,
        boot_args: [...fcKernelParams(), ...blockRootParams(config.kernelCmdline)].join(" "),
        ...(config.initrdPath === undefined ? {} : { initrd_path: config.initrdPath }),
      },
    },
    { path: "/drives/rootfs", body: { drive_id: "rootfs", path_on_host: config.rootfsPath, is_root_device: false, is_read_only: true } },
    ...slotDrives.map((d) => ({ path: `/drives/${d.drive_id}`, body: d })),
  ];
  (config.netDevices ?? []).forEach((n, i) => {
    const id = `eth${i}`;
    requests.push({ path: `/network-interfaces/${id}`, body: { iface_id: id, host_dev_name: n.tapName, guest_mac: n.mac } });
  });
  requests.push({ path: "/vsock", body: { guest_cid: guestCid, uds_path: vsockSocketPath } });
  requests.push({ path: "/actions", body: { action_type: "InstanceStart" } });
  return requests;
}
