// QEMU microvm as a Hypervisor. create() checks the config and the files it names before anything
// is spawned, so a missing kernel is a clear NOT_FOUND rather than a QEMU error after start.
import { stat } from "node:fs/promises";
import { KataError } from "../../util/errors.js";
import { resolveAccel, type KvmProber } from "../accel.js";
import type { Hypervisor, HypervisorCapabilities, VmConfig } from "../types.js";
import type { CpuOptions } from "./args/cpu.js";
import { pmemAlignment } from "./args/pmem.js";
import type { QemuTuning } from "./cmdline.js";
import { vmLayout } from "./layout.js";
import { hostTscKhz } from "./host-tsc.js";
import { qemuBinary, qemuSeccompSupported, qemuVersion } from "./probe.js";
import { QemuVm } from "./vm.js";

export { QemuVm } from "./vm.js";
export { QmpClient, QmpError, type QmpEvent, type QmpStatus } from "./qmp.js";
export { qemuArgs } from "./cmdline.js";

export interface QemuHypervisorOptions {
  binary?: string;
  /** Used when a VM asks for accel=auto and no cached probe answer exists. */
  kvmProber?: KvmProber;
  /** QEMU's own seccomp filter (-sandbox). Default: on when the QEMU build supports it. */
  seccomp?: boolean;
  cpuModel?: string;
  tcgThread?: CpuOptions["tcgThread"];
  /** TCG translation cache size; default 64 MiB (QEMU's own default, 1 GiB, costs ~25 MiB more RSS per VM: docs/hypervisor.md). */
  tcgTbSizeMiB?: number;
  /** virtio-balloon with free page reporting (default on; off only to measure what it saves). */
  freePageReporting?: boolean;
  /** How long QEMU may take to open its QMP socket after spawn. */
  startTimeoutMs?: number;
  /** Cap of each VM's console.log (rotated once to console.log.1); default 1 MiB. */
  consoleLogMaxBytes?: number;
}

const maxNetDevices = 8;
export const defaultTcgTbSizeMiB = 64;

async function requireFile(what: string, path: string): Promise<void> {
  const st = await stat(path).catch((err: unknown) => {
    throw new KataError("NOT_FOUND", `${what} ${path} does not exist (build guest assets: kata-ts build-assets)`, { cause: err });
  });
  if (!st.isFile()) throw new KataError("INVALID_ARGUMENT", `${what} ${path} is not a regular file`);
}

function requireInt(id: string, what: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new KataError(
      "INVALID_ARGUMENT",
      `VM ${id}: ${what} ${value} is outside what QEMU microvm supports here (an integer from ${min} to ${max}); ` +
        `a pod's size is the configured default plus its limits (docs/configuration.md)`,
    );
  }
}

export async function validateVmConfig(config: VmConfig): Promise<void> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(config.id)) {
    throw new KataError("INVALID_ARGUMENT", `VM id ${JSON.stringify(config.id)} must be 1-64 of [A-Za-z0-9._-]`);
  }
  requireInt(config.id, "vcpus", config.vcpus, 1, 64);
  requireInt(config.id, "memoryMiB", config.memoryMiB, 64, 1024 * 1024);
  if ((config.netDevices?.length ?? 0) > maxNetDevices) {
    throw new KataError("INVALID_ARGUMENT", `at most ${maxNetDevices} NICs per VM`);
  }
  await requireFile("guest kernel", config.kernelPath);
  if (config.initrdPath !== undefined) await requireFile("guest initrd", config.initrdPath);
  await requireFile("guest rootfs image", config.rootfsPath);
  if (config.rootfsDevice === "virtio-pmem") {
    const size = (await stat(config.rootfsPath)).size;
    if (size === 0 || size % pmemAlignment !== 0) {
      throw new KataError("INVALID_ARGUMENT", `guest rootfs image ${config.rootfsPath} is ${size} bytes; as virtio-pmem it must be a non-empty multiple of ${pmemAlignment} (kata-ts build-assets pads it)`);
    }
  }
}

export class QemuHypervisor implements Hypervisor {
  private constructor(
    private readonly opts: QemuHypervisorOptions,
    private readonly version: string,
    private readonly seccomp: boolean,
  ) {}

  /** Reads the QEMU version and seccomp support (fails with NOT_FOUND when QEMU is not installed). */
  static async open(opts: QemuHypervisorOptions = {}): Promise<QemuHypervisor> {
    const binary = opts.binary ?? qemuBinary;
    const version = await qemuVersion(binary);
    const seccomp = opts.seccomp ?? (await qemuSeccompSupported(binary));
    return new QemuHypervisor(opts, version, seccomp);
  }

  async create(config: VmConfig): Promise<QemuVm> {
    await validateVmConfig(config);
    const layout = vmLayout(config.stateDir);
    return new QemuVm(config, layout, {
      binary: this.opts.binary ?? qemuBinary,
      tuning: (c) => this.tuning(c),
      ...(this.opts.startTimeoutMs === undefined ? {} : { startTimeoutMs: this.opts.startTimeoutMs }),
      ...(this.opts.consoleLogMaxBytes === undefined ? {} : { consoleLogMaxBytes: this.opts.consoleLogMaxBytes }),
    });
  }

  capabilities(): HypervisorCapabilities {
    const seccomp = this.seccomp;
    return {
      name: "qemu-microvm",
      version: this.version,
      agentChannel: { transport: "virtio-serial" },
      sharedFs: { kind: "virtio-fs", requiresSharedMemory: true },
      network: { kind: "tap", maxDevices: maxNetDevices },
      seccomp: { enabled: seccomp, detail: seccomp ? "-sandbox on (deny obsolete, elevateprivileges, spawn, resourcecontrol)" : "off" },
    };
  }

  private async tuning(config: VmConfig): Promise<QemuTuning> {
    const accel = await resolveAccel(config.accel, this.opts.kvmProber);
    const tscKhz = accel === "tcg" ? await hostTscKhz() : undefined;
    const rootfsBytes = config.rootfsDevice === "virtio-pmem" ? (await stat(config.rootfsPath)).size : undefined;
    return {
      accel,
      ...(rootfsBytes === undefined ? {} : { rootfsBytes }),
      ...(tscKhz === undefined ? {} : { guestTscKhz: tscKhz }),
      seccomp: this.seccomp,
      ...(this.opts.cpuModel === undefined ? {} : { cpuModel: this.opts.cpuModel }),
      ...(this.opts.tcgThread === undefined ? {} : { tcgThread: this.opts.tcgThread }),
      tcgTbSizeMiB: this.opts.tcgTbSizeMiB ?? defaultTcgTbSizeMiB,
      freePageReporting: this.opts.freePageReporting ?? true,
    };
  }
}
