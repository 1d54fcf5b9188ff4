// The whole QEMU command line for one VM, as an argv array composed from the per-device renderers.
import { KataError } from "../../util/errors.js";
import { AGENT_PORT_NAME } from "../../protocol/contract/guest.js";
import { rootParamsFor, type RootImageDevice } from "../root-device.js";
import type { GuestKernelTraits, ResolvedAccel, VmConfig } from "../types.js";
import { renderAgentPort } from "./args/agent-port.js";
import { renderBalloon } from "./args/balloon.js";
import { renderConsole } from "./args/console.js";
import { renderControl } from "./args/control.js";
import { renderCpu, type CpuOptions } from "./args/cpu.js";
import { renderDisk } from "./args/disk.js";
import { renderKernel } from "./args/kernel.js";
import { machineAcpi, machineKernelParams, renderMachine, tcgDefaultAcpiOff, virtioTransport, type MachineType } from "./args/machine.js";
import { renderMemory, sharedMemoryBackendId, type SharedMemoryBacking } from "./args/memory.js";
import { renderNet } from "./args/net.js";
import { pmemPlacement, renderPmem } from "./args/pmem.js";
import { renderSharedFs } from "./args/shared-fs.js";
import type { VmLayout } from "./layout.js";

export const defaultAgentPortName = AGENT_PORT_NAME;

/**
 * Kernel parameters the VMM side owns: the console; reboot on panic (which -no-reboot turns into an
 * exit); under TCG the TSC frequency and no clocksource watchdog (see host-tsc.ts); and no crypto
 * self-tests (they cost boot time and test the guest kernel, not the pod). Under TCG also
 * `noreplace-smp`: a 1-vCPU kernel otherwise rewrites every LOCK prefix in its text at boot, and
 * each write to code invalidates what TCG translated (~130 ms of guest time, ~90 ms of QEMU CPU in
 * the floor: docs/guest.md "Boot time, round 6"); under KVM that patching is cheap and kept.
 * Under TCG, to a kernel that takes it (the project's, patched: `traits`), the local APIC timer's
 * period, so the kernel neither calibrates that timer against the PIT nor verifies it
 * (docs/guest.md "Boot time, round 10").
 */
export function vmmKernelParams(tuning: QemuTuning, traits?: GuestKernelTraits): string[] {
  const params = ["console=ttyS0", "panic=-1", "reboot=t", "cryptomgr.notests"];
  if (tuning.accel === "tcg") {
    if (tuning.guestTscKhz !== undefined) params.push(`tsc_early_khz=${tuning.guestTscKhz}`);
    params.push("tsc=reliable", "no_timer_check", "noreplace-smp");
    if (traits?.addedParams.includes("lapic_timer_period") === true) params.push(`lapic_timer_period=${tcgLapicTimerPeriod(traits.hz)}`);
  }
  return params;
}

/**
 * QEMU's emulated local APIC (TCG) counts its timer at 1 GHz before the divider: one count per
 * 2^count_shift ns of the virtual clock (hw/intc/apic.c, apic_common.c; QEMU 7.2), as KVM's does.
 */
export const TCG_APIC_BUS_HZ = 1_000_000_000;

/**
 * What Linux's calibration of that timer computes, `lapic_timer_period`: bus clocks per jiffy
 * (the count over HZ/10 jiffies with divider 16, times 16, over HZ/10), i.e. the bus frequency / HZ.
 */
export function tcgLapicTimerPeriod(hz: number): number {
  return Math.round(TCG_APIC_BUS_HZ / hz);
}

export interface QemuTuning {
  accel: ResolvedAccel;
  seccomp: boolean;
  cpuModel?: string;
  tcgThread?: CpuOptions["tcgThread"];
  tcgTbSizeMiB?: number;
  /** TCG: the code buffer in a memfd (split-wx), so an idle VM's cache can be given back (tcg-trim.ts). */
  tcgSplitWx?: boolean;
  /** TCG: the TSC frequency to tell the guest (the host's). */
  guestTscKhz?: number;
  /** virtio-balloon with free page reporting (default true). */
  freePageReporting?: boolean;
  /** The machine type (default microvm); q35 puts every virtio device on PCI. */
  machine?: MachineType;
  /** How the root image is attached; default the VM config's rootfsDevice (else virtio-blk). */
  rootDevice?: RootImageDevice;
  /** Size of the root image in bytes (needed when it is attached as virtio-pmem). */
  rootfsBytes?: number;
  /** The virtio-serial port the agent opens; defaultAgentPortName unless a test wants otherwise. */
  agentPortName?: string;
  /** How guest RAM shared with virtiofsd is backed (default a memfd). */
  sharedMemory?: SharedMemoryBacking;
}

export function qemuArgs(config: VmConfig, layout: VmLayout, tuning: QemuTuning): string[] {
  const shared = config.sharedFs !== undefined;
  const machine = tuning.machine ?? "microvm";
  const transport = virtioTransport(machine);
  const rootDevice = tuning.rootDevice ?? config.rootfsDevice ?? "virtio-blk";
  const pmem = rootDevice === "virtio-pmem";
  const pmemBytes = tuning.rootfsBytes ?? 0;
  // Under TCG a q35 guest whose kernel boots without ACPI gets acpi=off unless its parameters choose.
  const guestParams = tcgDefaultAcpiOff({ machine, accel: tuning.accel, kernelParams: config.kernelCmdline, ...(config.kernelTraits === undefined ? {} : { traits: config.kernelTraits }) })
    ? [...config.kernelCmdline, "acpi=off"]
    : config.kernelCmdline;
  const noAcpi = !machineAcpi(machine, guestParams);
  if (pmem && machine === "microvm") throw new KataError("INVALID_ARGUMENT", pmemOnMicrovmMessage);
  if (pmem && pmemBytes <= 0) throw new KataError("INVALID_ARGUMENT", `root image ${config.rootfsPath}: its size is needed to attach it as virtio-pmem`);
  const placement = pmemPlacement({ ramMiB: config.memoryMiB, acpi: !noAcpi, imageBytes: pmemBytes });
  return [
    ...renderControl({ name: config.id, qmpSocketPath: layout.qmpSocketPath, pidFilePath: layout.pidFilePath, seccomp: tuning.seccomp, ...(noAcpi ? { panicDevice: "pvpanic-pci" as const } : {}) }),
    ...renderMachine({ type: machine, ...(noAcpi ? { acpi: false } : {}), ...(shared ? { memoryBackendId: sharedMemoryBackendId } : {}) }),
    ...renderCpu({
      accel: tuning.accel,
      vcpus: config.vcpus,
      ...(tuning.cpuModel === undefined ? {} : { model: tuning.cpuModel }),
      ...(tuning.accel === "tcg" && tuning.tcgThread !== undefined ? { tcgThread: tuning.tcgThread } : {}),
      ...(tuning.accel === "tcg" && tuning.tcgTbSizeMiB !== undefined ? { tcgTbSizeMiB: tuning.tcgTbSizeMiB } : {}),
      ...(tuning.accel === "tcg" && tuning.tcgSplitWx === true ? { tcgSplitWx: true } : {}),
    }),
    ...renderMemory({ sizeMiB: config.memoryMiB, shared, ...(tuning.sharedMemory === undefined ? {} : { backing: tuning.sharedMemory }), ...(pmem ? { deviceMemoryBytes: placement.deviceMemoryBytes } : {}) }),
    ...renderKernel({
      kernelPath: config.kernelPath,
      ...(config.initrdPath === undefined ? {} : { initrdPath: config.initrdPath }),
      cmdline: [...vmmKernelParams(tuning, config.kernelTraits), ...rootParamsFor(rootDevice, machineKernelParams(machine, guestParams))],
    }),
    ...renderConsole({ socketPath: layout.consoleSocketPath }),
    ...(pmem
      ? renderPmem({ id: "rootfs", path: config.rootfsPath, sizeBytes: pmemBytes, ...(placement.address === undefined ? {} : { address: placement.address }) })
      : renderDisk({ id: "rootfs", path: config.rootfsPath, readOnly: true, transport })),
    ...(tuning.freePageReporting === false ? [] : renderBalloon(transport)),
    ...renderAgentPort({ socketPath: layout.agentSocketPath, portName: tuning.agentPortName ?? defaultAgentPortName, transport }),
    ...(config.sharedFs === undefined ? [] : renderSharedFs(config.sharedFs, transport)),
    ...renderNet(config.netDevices ?? [], transport),
  ];
}

/** Why virtio-pmem is refused on microvm, and what to do (config validation says the same). */
export const pmemOnMicrovmMessage =
  'the root image cannot be virtio-pmem on QEMU\'s microvm machine: microvm never maps a memory device into the guest (QEMU 7.2), so the guest gets no /dev/pmem0; use machine = "q35" with image_device = "pmem", or image_device = "disk" ([hypervisor.qemu], docs/configuration.md)';
