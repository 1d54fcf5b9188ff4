// QEMU (microvm or q35) as a Hypervisor. create() checks the config and the files it names before anything
// is spawned, so a missing kernel is a clear NOT_FOUND rather than a QEMU error after start.
import { stat } from "node:fs/promises";
import { defaultImageDeviceFor, defaultQemuMachine, defaultTcgTbSizeMiB } from "../../config/defaults.js";
import { KataError } from "../../util/errors.js";
import { resolveAccel, type KvmProber } from "../accel.js";
import type { Hypervisor, HypervisorCapabilities, VmConfig } from "../types.js";
import { maxNetDevices, validateVmConfig } from "../validate.js";
import type { CpuOptions } from "./args/cpu.js";
import type { MachineType } from "./args/machine.js";
import type { SharedMemoryBacking } from "./args/memory.js";
import { pmemAlignment } from "./args/pmem.js";
import { ensureGuestRamDir } from "./guest-ram-dir.js";
import { guestRamDir } from "../../util/paths.js";
import { pmemOnMicrovmMessage, type QemuTuning } from "./cmdline.js";
import { vmLayout } from "./layout.js";
import { hostTscKhz } from "./host-tsc.js";
import { qemuBinary, qemuSeccompSupported, qemuVersion } from "./probe.js";
import { QemuVm } from "./vm.js";

export { QemuVm } from "./vm.js";
export { QmpClient, QmpError, type QmpEvent, type QmpStatus } from "./qmp.js";
export { qemuArgs } from "./cmdline.js";
export { validateVmConfig } from "../validate.js";

export interface QemuHypervisorOptions {
  binary?: string;
  /** Used when a VM asks for accel=auto and no cached probe answer exists. */
  kvmProber?: KvmProber;
  /** QEMU's own seccomp filter (-sandbox). Default: on when the QEMU build supports it. */
  seccomp?: boolean;
  cpuModel?: string;
  tcgThread?: CpuOptions["tcgThread"];
  /** TCG translation cache size in MiB; default `[hypervisor.qemu] tcg_tb_size`'s (docs/hypervisor.md). */
  tcgTbSizeMiB?: number;
  /**
   * TCG: the code buffer in a memfd (`split-wx=on`), so that an idle VM's translation cache can be
   * given back to the host (tcg-trim.ts; on when `[hypervisor.qemu] tcg_idle_trim_s` > 0).
   */
  tcgSplitWx?: boolean;
  /** Machine type; default `[hypervisor.qemu] machine`'s (q35). q35 puts every virtio device on PCI and can map virtio-pmem. */
  machine?: MachineType;
  /**
   * How the guest image is attached, whatever VmConfig.rootfsDevice says: "disk" (read-only
   * virtio-blk) or "pmem" (read-only virtio-pmem mounted with DAX; needs machine "q35"). The root
   * kernel parameters are rewritten to match. Default: "pmem" on q35, "disk" on microvm.
   */
  imageDevice?: "disk" | "pmem";
  /** virtio-balloon with free page reporting (default on; off only to measure what it saves). */
  freePageReporting?: boolean;
  /** How long QEMU may take to open its QMP socket after spawn. */
  startTimeoutMs?: number;
  /** Cap of each VM's console.log (rotated once to console.log.1); default 1 MiB. */
  consoleLogMaxBytes?: number;
  /**
   * Guest RAM shared with virtiofsd (every pod's VM) in 2 MiB pages: an unlinked file on a
   * huge-page tmpfs at `guestRamDir` (mounted on first use) instead of a memfd. Default off
   * (docs/guest.md "Guest RAM in huge pages").
   */
  hugeGuestRam?: boolean;
  /** Where that tmpfs is mounted; default guestRamDir() (/run/kata-ts-guest-ram). */
  guestRamDir?: string;
  /** Name of the guest's virtio-serial agent port; "agent.0" (what the agent opens) unless a test wants otherwise. */
  agentPortName?: string;
  /** Boot an ELF kernel from a private copy released once loaded (default on; off only to measure what it saves: docs/density.md). */
  releaseKernel?: boolean;
}

export { defaultTcgTbSizeMiB };

export class QemuHypervisor implements Hypervisor {
  private constructor(
    private readonly opts: QemuHypervisorOptions,
    private readonly version: string,
    private readonly seccomp: boolean,
  ) {}

  /** Reads the QEMU version and seccomp support (fails with NOT_FOUND when QEMU is not installed). */
  static async open(opts: QemuHypervisorOptions = {}): Promise<QemuHypervisor> {
    const machine = opts.machine ?? defaultQemuMachine;
    if ((opts.imageDevice ?? defaultImageDeviceFor(machine)) === "pmem" && machine === "microvm") {
      throw new KataError("INVALID_ARGUMENT", pmemOnMicrovmMessage);
    }
    const binary = opts.binary ?? qemuBinary;
    const version = await qemuVersion(binary);
    const seccomp = opts.seccomp ?? (await qemuSeccompSupported(binary));
    return new QemuHypervisor(opts, version, seccomp);
  }

  async create(config: VmConfig): Promise<QemuVm> {
    await validateVmConfig(config);
    if (this.machine() === "q35" && config.initrdPath !== undefined) {
      // The Debian cloud kernel's initramfs loads the virtio-mmio transport and a virtio-blk root only.
      throw new KataError("FAILED_PRECONDITION", `guest ${config.kernelPath} boots through an initramfs (${config.initrdPath}), which loads virtio-mmio drivers only: it cannot run on machine q35; set [hypervisor.qemu] machine = "microvm" (or build the project's kernel: [guest] kernel = "project")`);
    }
    if (this.rootDevice() === "virtio-pmem") {
      const size = (await stat(config.rootfsPath)).size;
      if (size === 0 || size % pmemAlignment !== 0) {
        throw new KataError("INVALID_ARGUMENT", `guest rootfs image ${config.rootfsPath} is ${size} bytes; as virtio-pmem it must be a non-empty multiple of ${pmemAlignment} (kata-ts build-assets pads it)`);
      }
    }
    const layout = vmLayout(config.stateDir);
    return new QemuVm(config, layout, {
      binary: this.opts.binary ?? qemuBinary,
      tuning: (c) => this.tuning(c),
      ...(this.opts.releaseKernel === undefined ? {} : { releaseKernel: this.opts.releaseKernel }),
      ...(this.opts.startTimeoutMs === undefined ? {} : { startTimeoutMs: this.opts.startTimeoutMs }),
      ...(this.opts.consoleLogMaxBytes === undefined ? {} : { consoleLogMaxBytes: this.opts.consoleLogMaxBytes }),
    });
  }

  capabilities(): HypervisorCapabilities {
    const seccomp = this.seccomp;
    return {
      name: "qemu",
      version: this.version,
      accels: ["kvm", "tcg"],
      agentChannel: { transport: "virtio-serial" },
      sharedFs: { kind: "virtio-fs", requiresSharedMemory: true, dax: false },
      pmem: { kind: "virtio-pmem" },
      network: { kind: "tap", maxDevices: maxNetDevices },
      seccomp: { enabled: seccomp, detail: seccomp ? "-sandbox on (deny obsolete, elevateprivileges, spawn, resourcecontrol)" : "off" },
    };
  }

  private rootDevice(): "virtio-blk" | "virtio-pmem" {
    return (this.opts.imageDevice ?? defaultImageDeviceFor(this.machine())) === "pmem" ? "virtio-pmem" : "virtio-blk";
  }

  private machine(): MachineType {
    return this.opts.machine ?? defaultQemuMachine;
  }

  private async tuning(config: VmConfig): Promise<QemuTuning> {
    const accel = await resolveAccel(config.accel, this.opts.kvmProber);
    const tscKhz = accel === "tcg" ? await hostTscKhz() : undefined;
    const rootDevice = this.rootDevice();
    const rootfsBytes = rootDevice === "virtio-pmem" ? (await stat(config.rootfsPath)).size : undefined;
    const sharedMemory = await this.sharedMemory(config);
    return {
      accel,
      machine: this.machine(),
      rootDevice,
      ...(rootfsBytes === undefined ? {} : { rootfsBytes }),
      ...(tscKhz === undefined ? {} : { guestTscKhz: tscKhz }),
      seccomp: this.seccomp,
      ...(this.opts.cpuModel === undefined ? {} : { cpuModel: this.opts.cpuModel }),
      ...(this.opts.tcgThread === undefined ? {} : { tcgThread: this.opts.tcgThread }),
      tcgTbSizeMiB: this.opts.tcgTbSizeMiB ?? defaultTcgTbSizeMiB,
      ...(this.opts.tcgSplitWx === true ? { tcgSplitWx: true } : {}),
      freePageReporting: this.opts.freePageReporting ?? true,
      ...(this.opts.agentPortName === undefined ? {} : { agentPortName: this.opts.agentPortName }),
      ...(sharedMemory === undefined ? {} : { sharedMemory }),
    };
  }

  /** The huge-page backing when asked for and the VM shares memory (the tmpfs mounted first). */
  private async sharedMemory(config: VmConfig): Promise<SharedMemoryBacking | undefined> {
    if (this.opts.hugeGuestRam !== true || config.sharedFs === undefined) return undefined;
    const dir = this.opts.guestRamDir ?? guestRamDir();
    await ensureGuestRamDir(dir);
    return { kind: "huge-tmpfs", dir };
  }
}
