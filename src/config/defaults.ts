// The configuration's defaults and lookups that code running a pod needs, without the schema:
// schema.ts builds its zod schemas when loaded, which costs a shim server ~8 MiB for its whole
// life (docs/shim.md "Memory"). `start` validates the configuration; the server takes the result
// as plain values and reaches only this module.
import type { KataConfig, VmmSectionConfig } from "./schema.js";

/**
 * TCG's translation cache in MiB (QEMU `-accel tcg,tb-size=N`). QEMU fills the whole buffer before
 * it flushes, so every byte of it ends up resident: it is QEMU's largest cost after guest RAM.
 * Too small and the guest's hot code no longer fits (8 MiB made boot 3-4x slower here). What fills
 * it on an exec into a container is mostly the agent's V8 JIT output (new guest code to translate
 * each time); with the agent `--jitless` (src/guest/build.ts) 40 MiB saw no flush over 25 execs
 * and exec and StartContainer cost no more CPU than 64 MiB with the JIT; 32 MiB flushed ~0.2 times
 * per exec and StartContainer cost ~30 % more CPU. Measured in docs/density.md "TCG translation
 * cache". Ignored under KVM.
 */
export const defaultTcgTbSizeMiB = 40;

/**
 * The pool's VMs' TCG cache in MiB when they rehearse the pod path ([factory] tcg_tb_size): after
 * the flush and the rehearsal 48.6-48.7 MiB are in the cache at the offer, 50.3-51.4 after the pod's
 * third exec (docs/pool.md "Flush and rehearse"): 52 holds it, 48 does not (the rehearsal itself
 * overflows). Each adopted pod's QEMU holds the whole buffer: 12 MiB more than a booted pod's.
 */
export const defaultPoolTcgTbSizeMiB = 52;

/**
 * Seconds a pod's VM must have been idle (QEMU's CPU under ~30 millicores) before its TCG
 * translation cache is given back to the host ([hypervisor.qemu] tcg_idle_trim_s; 0: never, and
 * QEMU runs without split-wx). A trim frees the whole cache (40 MiB per booted pod, 52 per adopted
 * one) and costs the next exec ~350 ms more QEMU CPU (docs/density.md "Giving an idle VM's
 * translation cache back"). A minute: longer than the pauses of a pod's start (an image pull of a
 * few seconds, kubelet's probes), so a starting pod's warm cache (the pool's rehearsed one above
 * all) is not thrown away before its containers run.
 */
export const defaultTcgIdleTrimS = 60;

/**
 * QEMU's machine type and how the guest image is attached (docs/hypervisor.md, docs/guest.md):
 * "q35" + "pmem" (the default: virtio-pci, the image mapped read-only from the host's page cache and
 * mounted with DAX, shared by every VM: half the guest RAM at boot, less QEMU CPU to boot, less PSS
 * per VM from the second VM on) or "microvm" + "disk" (virtio-mmio, the image a read-only virtio-blk
 * disk read into each guest's page cache). microvm cannot map virtio-pmem (QEMU 7.2), so
 * image_device defaults to "pmem" on q35 and "disk" on microvm.
 */
export const defaultQemuMachine = "q35";
export const defaultQemuImageDevice = "pmem";

/** image_device when configuration.toml leaves it out: the one the machine can map. */
export function defaultImageDeviceFor(machine: "microvm" | "q35"): "disk" | "pmem" {
  return machine === "microvm" ? "disk" : defaultQemuImageDevice;
}

/** The VMMs kata-ts can drive; `[runtime] hypervisor` picks one. */
export const hypervisorNames = ["qemu", "cloud-hypervisor", "firecracker"] as const;
export type HypervisorName = (typeof hypervisorNames)[number];

/** The section of the VMM `[runtime] hypervisor` picks. */
export function selectedVmmConfig(config: KataConfig): VmmSectionConfig {
  return config.hypervisor[config.runtime.hypervisor];
}
