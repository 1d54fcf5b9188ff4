// Cloud Hypervisor's API as its OpenAPI document publishes it (cloud-hypervisor repository,
// vmm/src/api/openapi/cloud-hypervisor.yaml, API 0.3.0), written as zod schemas for the stand-in
// VMM. Objects are strict: a key the spec does not list is a deviation, like a wrong type or a
// missing required key. The objects kata-ts sends are written out with every property the spec
// gives them; the rest of VmConfig's top-level keys are only checked for presence in the spec.
import { z } from "zod";

const int = z.int();
const int16 = z.int().min(-32768).max(32767);
const uint8 = z.int().min(0).max(255);

const TokenBucket = z.strictObject({ size: int.min(0), one_time_burst: int.min(0).optional(), refill_time: int.min(0) });
const RateLimiterConfig = z.strictObject({ bandwidth: TokenBucket.optional(), ops: TokenBucket.optional() });
const VirtQueueAffinity = z.strictObject({ queue_index: int, host_cpus: z.array(int) });

export const PayloadConfig = z.strictObject({
  firmware: z.string().optional(),
  kernel: z.string().optional(),
  cmdline: z.string().optional(),
  initramfs: z.string().optional(),
  igvm: z.string().optional(),
  host_data: z.string().optional(),
});

export const CpusConfig = z.strictObject({
  boot_vcpus: int.min(1),
  max_vcpus: int.min(1),
  topology: z.strictObject({ threads_per_core: int.optional(), cores_per_die: int.optional(), dies_per_package: int.optional(), packages: int.optional() }).optional(),
  kvm_hyperv: z.boolean().optional(),
  max_phys_bits: int.optional(),
  nested: z.boolean().optional(),
  affinity: z.array(z.strictObject({ vcpu: int, host_cpus: z.array(int) })).optional(),
  features: z.strictObject({ amx: z.boolean().optional() }).optional(),
  core_scheduling: z.enum(["Vm", "Vcpu", "Off"]).optional(),
});

export const MemoryConfig = z.strictObject({
  size: int,
  hotplug_size: int.optional(),
  hotplugged_size: int.optional(),
  mergeable: z.boolean().optional(),
  hotplug_method: z.string().optional(),
  shared: z.boolean().optional(),
  hugepages: z.boolean().optional(),
  hugepage_size: int.optional(),
  prefault: z.boolean().optional(),
  reserve: z.boolean().optional(),
  thp: z.boolean().optional(),
  zones: z.array(z.unknown()).optional(),
});

export const DiskConfig = z.strictObject({
  path: z.string().optional(),
  readonly: z.boolean().optional(),
  direct: z.boolean().optional(),
  iommu: z.boolean().optional(),
  num_queues: int.optional(),
  queue_size: int.optional(),
  vhost_user: z.boolean().optional(),
  vhost_socket: z.string().optional(),
  rate_limiter_config: RateLimiterConfig.optional(),
  pci_segment: int16.optional(),
  pci_device_id: uint8.optional(),
  id: z.string().optional(),
  serial: z.string().optional(),
  rate_limit_group: z.string().optional(),
  queue_affinity: z.array(VirtQueueAffinity).optional(),
  backing_files: z.boolean().optional(),
  sparse: z.boolean().optional(),
  image_type: z.enum(["FlatVmdk", "FixedVhd", "Qcow2", "Raw", "Vhdx", "Unknown"]).optional(),
  lock_granularity: z.enum(["ByteRange", "Full"]).optional(),
});

export const NetConfig = z.strictObject({
  tap: z.string().optional(),
  ip: z.string().optional(),
  mask: z.string().optional(),
  mac: z.string().regex(/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/, "a MAC address").optional(),
  host_mac: z.string().optional(),
  mtu: int.optional(),
  iommu: z.boolean().optional(),
  num_queues: int.optional(),
  queue_size: int.optional(),
  vhost_user: z.boolean().optional(),
  vhost_socket: z.string().optional(),
  vhost_mode: z.string().optional(),
  id: z.string().optional(),
  pci_segment: int16.optional(),
  pci_device_id: uint8.optional(),
  rate_limiter_config: RateLimiterConfig.optional(),
  offload_tso: z.boolean().optional(),
  offload_ufo: z.boolean().optional(),
  offload_csum: z.boolean().optional(),
});

export const FsConfig = z.strictObject({
  tag: z.string(),
  socket: z.string(),
  num_queues: int,
  queue_size: int,
  pci_segment: int16.optional(),
  pci_device_id: uint8.optional(),
  id: z.string().optional(),
});

export const PmemConfig = z.strictObject({
  file: z.string(),
  size: int.optional(),
  iommu: z.boolean().optional(),
  discard_writes: z.boolean().optional(),
  pci_segment: int16.optional(),
  pci_device_id: uint8.optional(),
  id: z.string().optional(),
});

const ConsoleMode = z.enum(["Off", "Pty", "Tty", "File", "Socket", "Null"]);

export const ConsoleConfig = z.strictObject({
  file: z.string().optional(),
  socket: z.string().optional(),
  mode: ConsoleMode,
  iommu: z.boolean().optional(),
  id: z.string().optional(),
  pci_segment: int16.optional(),
  pci_device_id: uint8.optional(),
});

export const SerialConfig = z.strictObject({ file: z.string().optional(), socket: z.string().optional(), mode: ConsoleMode });

export const VsockConfig = z.strictObject({
  cid: int.min(3),
  socket: z.string(),
  iommu: z.boolean().optional(),
  pci_segment: int16.optional(),
  pci_device_id: uint8.optional(),
  id: z.string().optional(),
});

export const VmConfig = z.strictObject({
  cpus: CpusConfig.optional(),
  memory: MemoryConfig.optional(),
  payload: PayloadConfig,
  rate_limit_groups: z.array(z.unknown()).optional(),
  disks: z.array(DiskConfig).optional(),
  net: z.array(NetConfig).optional(),
  rng: z.unknown().optional(),
  balloon: z.unknown().optional(),
  fs: z.array(FsConfig).optional(),
  generic_vhost_user: z.array(z.unknown()).optional(),
  pmem: z.array(PmemConfig).optional(),
  serial: SerialConfig.optional(),
  console: ConsoleConfig.optional(),
  debug_console: z.unknown().optional(),
  devices: z.array(z.unknown()).optional(),
  user_devices: z.array(z.unknown()).optional(),
  vdpa: z.array(z.unknown()).optional(),
  vsock: VsockConfig.optional(),
  numa: z.array(z.unknown()).optional(),
  iommu: z.boolean().optional(),
  watchdog: z.boolean().optional(),
  rtc: z.unknown().optional(),
  pvpanic: z.boolean().optional(),
  pci_segments: z.array(z.unknown()).optional(),
  platform: z.unknown().optional(),
  tpm: z.unknown().optional(),
  landlock_enable: z.boolean().optional(),
  landlock_rules: z.array(z.unknown()).optional(),
});
export type ChVmConfigSpec = z.output<typeof VmConfig>;

/** The endpoints the stand-in serves: method, and the request body schema (undefined: no body). */
export const chEndpoints: Record<string, { method: "GET" | "PUT"; body?: z.ZodType }> = {
  "/api/v1/vmm.ping": { method: "GET" },
  "/api/v1/vmm.shutdown": { method: "PUT" },
  "/api/v1/vm.info": { method: "GET" },
  "/api/v1/vm.create": { method: "PUT", body: VmConfig },
  "/api/v1/vm.boot": { method: "PUT" },
  "/api/v1/vm.shutdown": { method: "PUT" },
  "/api/v1/vm.delete": { method: "PUT" },
};
