// Accelerator, CPU model and vCPU count. Under TCG `-cpu max` exposes every feature TCG can emulate
// (the guest kernel then picks its fast paths) but ERMS; under KVM `host` passes the real CPU through.
import { qemuOpts } from "./opts.js";

export interface CpuOptions {
  accel: "kvm" | "tcg";
  vcpus: number;
  /** Defaults: "host" under KVM, TCG_CPU_MODEL under TCG. */
  model?: string;
  /** TCG only: one host thread per vCPU (multi) or all vCPUs on one thread (single). */
  tcgThread?: "multi" | "single";
  /** TCG only: translation block cache size in MiB (QEMU default 1 GiB of virtual reservation). */
  tcgTbSizeMiB?: number;
  /**
   * TCG only: the code buffer in a memfd mapped twice, writable and executable (`split-wx=on`).
   * Its pages are then shared memory that an idle VM can give back (tcg-trim.ts) instead of
   * anonymous memory QEMU keeps for its life.
   */
  tcgSplitWx?: boolean;
}

/**
 * The TCG default: `max` without ERMS ("enhanced rep movsb/stosb"). With ERMS the guest kernel
 * clears every page it hands out with one `rep stosb` of 4096 bytes and copies to and from user
 * space with `rep movsb`, and glibc's memset/memcpy do the same above ~2 KiB; QEMU 7.2's TCG runs a
 * rep string instruction one element per pass through its translated block. Without ERMS both use
 * 8-byte `rep stosq`/`movsq` or vector loops. QEMU CPU to agent ready -70 and -100 ms (medians of
 * paired boots, lower in 14 of 20 pairs, loaded host; docs/guest.md "Boot time, round 7"). V8 does
 * not look at ERMS, so the agent's snapshot still loads.
 */
export const TCG_CPU_MODEL = "max,erms=off";

export function renderCpu(opts: CpuOptions): string[] {
  const accel =
    opts.accel === "kvm"
      ? qemuOpts("kvm", {})
      : qemuOpts("tcg", { thread: opts.tcgThread, "tb-size": opts.tcgTbSizeMiB, "split-wx": opts.tcgSplitWx === true ? true : undefined });
  const model = opts.model ?? (opts.accel === "kvm" ? "host" : TCG_CPU_MODEL);
  return ["-accel", accel, "-cpu", model, "-smp", String(opts.vcpus)];
}
