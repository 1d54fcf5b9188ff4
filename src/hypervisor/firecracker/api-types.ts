// The part of Firecracker's REST API kata-ts uses, typed from its swagger document (firecracker
// repository, src/firecracker/swagger/firecracker.yaml). Every request is a PUT (PATCH for a drive after boot) answered 204 on
// success, 400 with an Error body ({ fault_message }) on bad input. Pre-boot configuration first,
// then PUT /actions { action_type: "InstanceStart" }.

/** GET / -> 200 */
export interface FcInstanceInfo {
  app_name: string;
  id: string;
  state: "Not started" | "Running" | "Paused";
  vmm_version: string;
}

/** PUT /machine-config */
export interface FcMachineConfiguration {
  /** 1..32 */
  vcpu_count: number;
  mem_size_mib: number;
  smt: boolean;
}

/** PUT /boot-source */
export interface FcBootSource {
  kernel_image_path: string;
  boot_args: string;
  initrd_path?: string;
}

/** PUT /drives/{drive_id} */
export interface FcDrive {
  drive_id: string;
  path_on_host: string;
  /** true: Firecracker adds root=/dev/vda itself; kata-ts passes its own root= so it stays false. */
  is_root_device: boolean;
  is_read_only: boolean;
}

/** PATCH /drives/{drive_id} (post-boot only): a new backing file for an existing drive. */
export interface FcPartialDrive {
  drive_id: string;
  path_on_host?: string;
}

/** PUT /network-interfaces/{iface_id} */
export interface FcNetworkInterface {
  iface_id: string;
  host_dev_name: string;
  guest_mac: string;
}

/** PUT /vsock */
export interface FcVsock {
  /** >= 3 */
  guest_cid: number;
  uds_path: string;
}

/** PUT /actions */
export interface FcInstanceActionInfo {
  action_type: "InstanceStart" | "SendCtrlAltDel" | "FlushMetrics";
}

/** Error body of every non-2xx answer. */
export interface FcError {
  fault_message?: string;
}
