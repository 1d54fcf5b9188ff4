// Accelerator, CPU model and vCPU count. Under TCG `-cpu max` exposes every feature TCG can emulate
// (the guest kernel then picks its fast paths); under KVM `host` passes the real CPU through.
import { qemuOpts } from "./opts.js";

export interface CpuOptions {
  accel: "kvm" | "tcg";
  vcpus: number;
  /** Defaults: "host" under KVM, "max" under TCG. */
  model?: string;
  /** TCG only: one host thread per vCPU (multi) or all vCPUs on one thread (single). */
  tcgThread?: "multi" | "single";
  /** TCG only: translation block cache size in MiB (QEMU default 1 GiB of virtual reservation). */
  tcgTbSizeMiB?: number;
}

export function renderCpu(opts: CpuOptions): string[] {
  const accel =
    opts.accel === "kvm"
      ? qemuOpts("kvm", {})
      : qemuOpts("tcg", { thread: opts.tcgThread, "tb-size": opts.tcgTbSizeMiB });
  const model = opts.model ?? (opts.accel === "kvm" ? "host" : "max");
  return ["-accel", accel, "-cpu", model, "-smp", String(opts.vcpus)];
}
