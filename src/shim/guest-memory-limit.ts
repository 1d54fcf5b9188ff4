// A container's memory limit as the guest enforces it. The VM of a pod with limits has
// default_memory + the sum of its limits (pod-sizing.ts), and the guest kernel keeps a `struct page`
// (64 bytes) for every 4 KiB page of it, written at boot: 1/64 of the VM's memory is host memory the
// pod holds from its start, charged to its pod cgroup with the guest RAM. kubelet limits that cgroup
// to the containers' limits + the RuntimeClass's overhead.podFixed, a fixed figure: it covers the
// metadata of the baseline and of limits up to `[runtime] overhead_covers_limits_mib`, not of any
// limit (8 GiB of limits carry 128 MiB of it). A pod whose containers used all their memory would
// then be OOM-killed by the host, VM and all (bench/overhead.ts --busy-limit-mib 8192, docs/density.md).
// So above what podFixed covers, each container's limit in the guest is lowered by its share of the
// metadata of the rest: its container is OOM-killed in the guest first, as on runc at its limit, and
// the pod lives on. The metadata counted is the `struct page` array and the page tables a container
// needs to map all of its memory (8 bytes per 4 KiB page, 1/512): both grow with the limit, both
// live in guest RAM the pod cgroup is charged for (8 GiB filled: 128 + 16 MiB).
import type { OciSpec } from "../protocol/contract/oci.js";

/** Bytes of `struct page` per byte of guest memory: 64 per 4 KiB page (x86-64 and arm64). */
export const GUEST_MEMMAP_DIVISOR = 64;
/** Bytes of last-level page table per byte of memory a process maps: an 8-byte entry per 4 KiB page. */
export const GUEST_PAGE_TABLE_DIVISOR = 512;
const PAGE = 4096;
const MiB = 1024 * 1024;

export interface LimitCover {
  /** The sum of the pod's memory limits that sized its VM (the CRI sandbox-memory annotation), MiB. */
  podLimitsMiB: number;
  /** Of that sum, how much podFixed covers the guest's page metadata for, MiB. */
  coveredMiB: number;
}

/**
 * `limitBytes` lowered by its share of the guest page metadata podFixed does not cover, rounded to
 * whole pages; unchanged when the pod's limits are within the cover (or it has none).
 */
export function guestMemoryLimit(limitBytes: number, cover: LimitCover): number {
  const uncoveredMiB = cover.podLimitsMiB - cover.coveredMiB;
  if (!(limitBytes > 0) || cover.podLimitsMiB <= 0 || uncoveredMiB <= 0) return limitBytes;
  // A container's limit over the pod's sum (its pod sized otherwise) takes the sum's whole share.
  const share = Math.min(1, limitBytes / (cover.podLimitsMiB * MiB));
  const lowerBy = Math.ceil((share * uncoveredMiB * MiB * (1 / GUEST_MEMMAP_DIVISOR + 1 / GUEST_PAGE_TABLE_DIVISOR)) / PAGE) * PAGE;
  return Math.max(PAGE, limitBytes - lowerBy);
}

/**
 * OCI LinuxResources (a container's spec, or an Update's resources as containerd sends them) with
 * the memory limit as the guest should enforce it; the same object when unchanged. A swap limit
 * (memory+swap) is lowered by as much, so that it allows the swap it allowed before (none when it
 * equalled the limit, as the CRI plugin sets it).
 */
export function withGuestMemoryLimit(resources: Record<string, unknown>, cover: LimitCover): Record<string, unknown> {
  const memory = resources.memory;
  if (typeof memory !== "object" || memory === null) return resources;
  const { limit, swap } = memory as { limit?: unknown; swap?: unknown };
  if (typeof limit !== "number") return resources;
  const guest = guestMemoryLimit(limit, cover);
  if (guest === limit) return resources;
  const lowered = typeof swap === "number" && swap > 0 ? { swap: Math.max(guest, swap - (limit - guest)) } : {};
  return { ...resources, memory: { ...memory, limit: guest, ...lowered } };
}

/** The OCI spec with its memory limit as the guest should enforce it (the same object when unchanged). */
export function withGuestSpecMemoryLimit(spec: OciSpec, cover: LimitCover): OciSpec {
  const resources = spec.linux?.resources;
  if (resources === undefined) return spec;
  const guest = withGuestMemoryLimit(resources, cover);
  return guest === resources ? spec : { ...spec, linux: { ...spec.linux, resources: guest } };
}
