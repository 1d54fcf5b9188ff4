// The one place that turns configuration into a VMM driver: `[runtime] hypervisor` names it and
// `[hypervisor.<name>]` holds its settings. Everything else takes a Hypervisor and never names one.
import { defaultConfig, type KataConfig } from "../config/schema.js";
import { CloudHypervisor } from "./cloud-hypervisor/index.js";
import { Firecracker } from "./firecracker/index.js";
import { QemuHypervisor } from "./qemu/index.js";
import type { Hypervisor } from "./types.js";

export async function openHypervisor(config: KataConfig): Promise<Hypervisor> {
  const name = config.runtime.hypervisor;
  switch (name) {
    case "qemu":
      return QemuHypervisor.open({ binary: config.hypervisor.qemu.path, tcgTbSizeMiB: config.hypervisor.qemu.tcg_tb_size });
    case "cloud-hypervisor": {
      const ch = config.hypervisor["cloud-hypervisor"];
      return CloudHypervisor.open({ binary: ch.path, rootImage: ch.image_device });
    }
    case "firecracker":
      return Firecracker.open({ binary: config.hypervisor.firecracker.path, blockSlots: config.hypervisor.firecracker.block_slots });
  }
}

let memo: Promise<Hypervisor> | undefined;

/** The VMM of the built-in configuration (QEMU), opened once per process. */
export function defaultHypervisor(): Promise<Hypervisor> {
  memo ??= openHypervisor(defaultConfig());
  memo.catch(() => {
    memo = undefined;
  });
  return memo;
}
