// Firecracker's API as its swagger document publishes it (firecracker repository,
// src/firecracker/swagger/firecracker.yaml), written as zod schemas for the stand-in VMM. Strict
// objects: Firecracker itself rejects unknown fields, so a key the spec does not list is a
// deviation, like a wrong type or a missing required key.
import { z } from "zod";

const int = z.int();
const TokenBucket = z.strictObject({ size: int.min(0), one_time_burst: int.min(0).optional(), refill_time: int.min(0) });
const RateLimiter = z.strictObject({ bandwidth: TokenBucket.optional(), ops: TokenBucket.optional() });

export const MachineConfiguration = z.strictObject({
  cpu_template: z.enum(["C3", "T2", "T2S", "T2CL", "T2A", "V1N1", "None"]).optional(),
  smt: z.boolean().optional(),
  mem_size_mib: int,
  track_dirty_pages: z.boolean().optional(),
  vcpu_count: int.min(1).max(32),
  huge_pages: z.enum(["None", "Transparent", "2M"]).optional(),
});

export const BootSource = z.strictObject({
  boot_args: z.string().optional(),
  initrd_path: z.string().optional(),
  kernel_image_path: z.string(),
});

export const Drive = z.strictObject({
  drive_id: z.string(),
  partuuid: z.string().optional(),
  is_root_device: z.boolean(),
  cache_type: z.enum(["Unsafe", "Writeback"]).optional(),
  is_read_only: z.boolean().optional(),
  path_on_host: z.string().optional(),
  rate_limiter: RateLimiter.optional(),
  io_engine: z.enum(["Sync", "Async"]).optional(),
  socket: z.string().optional(),
});

/** PATCH /drives/{drive_id}, post-boot only: a new backing file (or rate limiter) for a drive configured before boot. */
export const PartialDrive = z.strictObject({
  drive_id: z.string(),
  path_on_host: z.string().optional(),
  rate_limiter: RateLimiter.optional(),
});

export const NetworkInterface = z.strictObject({
  guest_mac: z.string().optional(),
  host_dev_name: z.string(),
  iface_id: z.string(),
  mtu: int.min(68).max(65535).optional(),
  rx_rate_limiter: RateLimiter.optional(),
  tx_rate_limiter: RateLimiter.optional(),
});

export const Vsock = z.strictObject({
  guest_cid: int.min(3),
  uds_path: z.string(),
  vsock_id: z.string().optional(),
});

export const InstanceActionInfo = z.strictObject({
  action_type: z.enum(["FlushMetrics", "InstanceStart", "SendCtrlAltDel"]),
});

export type FcMethod = "GET" | "PUT" | "PATCH";

/** Path pattern -> the methods kata-ts uses on it, each with its body schema; {id} path parameters must match the body's id field. */
export const fcEndpoints: Array<{ pattern: RegExp; methods: Partial<Record<FcMethod, { body?: z.ZodType }>>; idField?: string }> = [
  { pattern: /^\/$/, methods: { GET: {} } },
  { pattern: /^\/machine-config$/, methods: { PUT: { body: MachineConfiguration } } },
  { pattern: /^\/boot-source$/, methods: { PUT: { body: BootSource } } },
  { pattern: /^\/drives\/([^/]+)$/, methods: { PUT: { body: Drive }, PATCH: { body: PartialDrive } }, idField: "drive_id" },
  { pattern: /^\/network-interfaces\/([^/]+)$/, methods: { PUT: { body: NetworkInterface } }, idField: "iface_id" },
  { pattern: /^\/vsock$/, methods: { PUT: { body: Vsock } } },
  { pattern: /^\/actions$/, methods: { PUT: { body: InstanceActionInfo } } },
];
