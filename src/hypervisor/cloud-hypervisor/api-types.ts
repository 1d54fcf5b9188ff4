// The part of Cloud Hypervisor's REST API kata-ts uses, typed from its OpenAPI document
// (cloud-hypervisor repository, vmm/src/api/openapi/cloud-hypervisor.yaml, API version 0.3.0).
// Paths are under /api/v1. Sizes are bytes. Only the fields kata-ts sends are listed.

export const chApiBase = "/api/v1";

/** GET /vmm.ping -> 200 */
export interface ChVmmPingResponse {
  version: string;
  build_version?: string;
  pid?: number;
  features?: string[];
}

export interface ChPayloadConfig {
  kernel: string;
  cmdline: string;
  initramfs?: string;
}

export interface ChCpusConfig {
  boot_vcpus: number;
  max_vcpus: number;
}

export interface ChMemoryConfig {
  /** bytes */
  size: number;
  /** Guest RAM in a shared mapping: vhost-user devices (virtiofsd) need it. */
  shared: boolean;
}

export interface ChDiskConfig {
  path: string;
  readonly: boolean;
  id: string;
}

export interface ChPmemConfig {
  file: string;
  /** Writes stay in guest memory: the backing image is never changed. */
  discard_writes: boolean;
  id: string;
}

export interface ChFsConfig {
  tag: string;
  socket: string;
  num_queues: number;
  queue_size: number;
  id: string;
}

export interface ChNetConfig {
  tap: string;
  mac: string;
  id: string;
}

export interface ChVsockConfig {
  /** >= 3 */
  cid: number;
  socket: string;
  id: string;
}

export type ChConsoleMode = "Off" | "Pty" | "Tty" | "File" | "Socket" | "Null";

export interface ChConsoleConfig {
  mode: ChConsoleMode;
  file?: string;
}

/** PUT /vm.create body (204 on success). */
export interface ChVmConfig {
  cpus: ChCpusConfig;
  memory: ChMemoryConfig;
  payload: ChPayloadConfig;
  disks?: ChDiskConfig[];
  pmem?: ChPmemConfig[];
  fs?: ChFsConfig[];
  net?: ChNetConfig[];
  vsock: ChVsockConfig;
  serial: ChConsoleConfig;
  console: ChConsoleConfig;
  /** A guest kernel panic is reported through a pvpanic device. */
  pvpanic: boolean;
}
