// A VM shape: everything a pooled VM is booted with that a pod could differ on (VMM, accelerator,
// vCPUs, memory, kernel, initrd, image, kernel parameters) plus the tenant whose pods may take it.
// The shim and the pool daemon compute it the same way from configuration.toml, so a pooled VM is
// handed only to a pod that would have booted exactly that VM.
import { createHash } from "node:crypto";
import { selectedVmmConfig, type KataConfig, type QemuConfig } from "../config/index.js";
import { AGENT_CGROUP_PARAM } from "../protocol/contract/guest.js";
import { loadGuestAssets, type GuestAssets } from "../guest/assets.js";
import type { GuestKernelTraits, VmConfig } from "../hypervisor/types.js";
import { KataError } from "../util/errors.js";

/** The VmConfig fields a pooled VM is booted with (the rest is per VM: id, state dir, share, NICs). */
export type PoolShape = Pick<VmConfig, "accel" | "vcpus" | "memoryMiB" | "kernelPath" | "initrdPath" | "rootfsPath" | "rootfsDevice" | "kernelCmdline" | "kernelTraits"> & {
  qemuPath: string;
  /** [hypervisor.qemu] machine and image_device: the pooled VM is that machine with the image so attached. */
  qemuMachine: QemuConfig["machine"];
  imageDevice: QemuConfig["image_device"];
  /** [hypervisor.qemu] huge_guest_ram (absent: off). */
  hugeGuestRam?: boolean;
  /**
   * [hypervisor.qemu] tcg_tb_size (MiB): a pooled VM's TCG translation cache is the one a booted
   * VM gets (it decides whether the container warm-up's translations survive until the pod's first
   * start: docs/containers.md). Absent in shapes from shims before it was carried: the default.
   */
  tcgTbSizeMiB?: number;
  /**
   * TCG's code buffer in a memfd (split-wx), on when [hypervisor.qemu] tcg_idle_trim_s > 0: an
   * adopted VM is trimmed like a booted one once it is the pod's (never while pooled). Absent: off.
   */
  tcgSplitWx?: boolean;
  /** "" for pods without the tenant annotation. */
  tenant: string;
};

/**
 * The guest assets a pod boots with: the manifest's, with the selected VMM section's overrides
 * ([hypervisor.<name>]) and the kernel parameters the configuration asks of the guest.
 */
export async function podAssets(config: KataConfig): Promise<GuestAssets> {
  const vmm = selectedVmmConfig(config);
  const assets = await loadGuestAssets();
  if (vmm.kernel !== "") {
    // An operator's own kernel: nothing is known about what it takes.
    assets.kernelPath = vmm.kernel;
    delete assets.kernelTraits;
  }
  if (vmm.initrd !== "") assets.initrdPath = vmm.initrd;
  if (vmm.image !== "") assets.rootfsPath = vmm.image;
  // An agent that may be asked to reclaim its memory needs its own cgroup from boot; others do not pay for it.
  if (config.runtime.hypervisor === "qemu" && config.hypervisor.qemu.tcg_idle_reclaim_agent) assets.kernelCmdline.push(AGENT_CGROUP_PARAM);
  assets.kernelCmdline.push(...vmm.kernel_params);
  return assets;
}

/**
 * The pool keeps QEMU VMs only: adoption hands QEMU over by its QMP socket and pid, which the REST
 * VMMs (Cloud Hypervisor, Firecracker) have no counterpart for yet (docs/pool.md).
 */
export function requirePoolVmm(config: KataConfig, source = "configuration.toml"): void {
  const name = config.runtime.hypervisor;
  if (name !== "qemu") {
    throw new KataError("FAILED_PRECONDITION", `the VM pool keeps QEMU VMs only, but [runtime] hypervisor = "${name}" in ${source}: set [factory] enable_pool = false, or [runtime] hypervisor = "qemu"`);
  }
}

/**
 * Whether the pool's VMs rehearse the pod path once prepared ([factory] rehearse_pod_path, which
 * needs the container warm-up); they then get [factory] tcg_tb_size (docs/pool.md "Flush and rehearse").
 */
export function rehearsesPodPath(config: KataConfig): boolean {
  return config.factory.warm_up_containers && config.factory.rehearse_pod_path;
}

const tenantPattern = /^[A-Za-z0-9._-]{0,63}$/;

export function poolShape(config: KataConfig, assets: GuestAssets, sizing: { vcpus: number; memoryMiB: number }, tenant: string): PoolShape {
  if (!tenantPattern.test(tenant)) {
    throw new KataError("INVALID_ARGUMENT", `pool tenant ${JSON.stringify(tenant)} (annotation ${config.factory.tenant_annotation}) must be up to 63 of [A-Za-z0-9._-]`);
  }
  requirePoolVmm(config);
  const qemu = config.hypervisor.qemu;
  return {
    qemuPath: qemu.path,
    qemuMachine: qemu.machine,
    imageDevice: qemu.image_device,
    ...(qemu.huge_guest_ram ? { hugeGuestRam: true } : {}),
    tcgTbSizeMiB: rehearsesPodPath(config) ? config.factory.tcg_tb_size : qemu.tcg_tb_size,
    ...(qemu.tcg_idle_trim_s > 0 ? { tcgSplitWx: true } : {}),
    accel: qemu.accel,
    vcpus: sizing.vcpus,
    memoryMiB: sizing.memoryMiB,
    kernelPath: assets.kernelPath,
    ...(assets.initrdPath === undefined ? {} : { initrdPath: assets.initrdPath }),
    rootfsPath: assets.rootfsPath,
    ...(assets.rootfsDevice === undefined ? {} : { rootfsDevice: assets.rootfsDevice }),
    kernelCmdline: [...assets.kernelCmdline],
    ...(assets.kernelTraits === undefined ? {} : { kernelTraits: assets.kernelTraits }),
    tenant,
  };
}

/** Equal for equal shapes, whatever the key order. */
export function shapeKey(s: PoolShape): string {
  const canonical = JSON.stringify([s.qemuPath, s.qemuMachine, s.imageDevice, s.hugeGuestRam === true, s.tcgTbSizeMiB ?? 0, s.tcgSplitWx === true, s.accel, s.vcpus, s.memoryMiB, s.kernelPath, s.initrdPath ?? "", s.rootfsPath, s.rootfsDevice ?? "", s.kernelCmdline, s.tenant, s.kernelTraits ?? null]);
  return createHash("sha256").update(canonical).digest("hex").slice(0, 16);
}

/** Checks a shape that arrived over the pool socket (the daemon boots from it). */
export function parseShape(v: unknown): PoolShape {
  const o = v as Partial<PoolShape> | null;
  const str = (x: unknown): x is string => typeof x === "string" && x !== "";
  const ok =
    o !== null && typeof o === "object" && str(o.qemuPath) && (o.qemuMachine === "microvm" || o.qemuMachine === "q35") && (o.imageDevice === "disk" || o.imageDevice === "pmem") && (o.hugeGuestRam === undefined || typeof o.hugeGuestRam === "boolean") && (o.tcgSplitWx === undefined || typeof o.tcgSplitWx === "boolean") &&
    (o.tcgTbSizeMiB === undefined || (Number.isInteger(o.tcgTbSizeMiB) && o.tcgTbSizeMiB >= 4 && o.tcgTbSizeMiB <= 4096)) && (o.accel === "auto" || o.accel === "kvm" || o.accel === "tcg") &&
    Number.isInteger(o.vcpus) && (o.vcpus ?? 0) >= 1 && Number.isInteger(o.memoryMiB) && (o.memoryMiB ?? 0) >= 64 &&
    str(o.kernelPath) && (o.initrdPath === undefined || str(o.initrdPath)) && str(o.rootfsPath) && (o.rootfsDevice === undefined || o.rootfsDevice === "virtio-blk" || o.rootfsDevice === "virtio-pmem") &&
    Array.isArray(o.kernelCmdline) && o.kernelCmdline.every((p) => typeof p === "string") && (o.kernelTraits === undefined || isKernelTraits(o.kernelTraits)) &&
    typeof o.tenant === "string" && tenantPattern.test(o.tenant);
  if (!ok) throw new KataError("INVALID_ARGUMENT", `not a VM shape: ${JSON.stringify(v)?.slice(0, 300)}`);
  return o as PoolShape;
}

function isKernelTraits(t: unknown): boolean {
  const o = t as Partial<GuestKernelTraits> | null;
  return o !== null && typeof o === "object" && Number.isInteger(o.hz) && (o.hz ?? 0) > 0 && Array.isArray(o.addedParams) && o.addedParams.every((p) => typeof p === "string") && typeof o.bootsWithoutAcpi === "boolean";
}
