// The one place that turns configuration into a VMM driver: `[runtime] hypervisor` names it and
// `[hypervisor.<name>]` holds its settings. Everything else takes a Hypervisor and never names one.
// The drivers of the REST VMMs are loaded only when configured: they pull in node:http, which a
// shim running QEMU pods would otherwise load and hold in every pod's process (docs/shim.md).
import type { KataConfig } from "../config/schema.js";
import { QemuHypervisor } from "./qemu/index.js";
import type { Hypervisor } from "./types.js";

export async function openHypervisor(config: KataConfig): Promise<Hypervisor> {
  const name = config.runtime.hypervisor;
  switch (name) {
    case "qemu": {
      const q = config.hypervisor.qemu;
      return QemuHypervisor.open({ binary: q.path, tcgTbSizeMiB: q.tcg_tb_size, tcgSplitWx: q.tcg_idle_trim_s > 0, machine: q.machine, imageDevice: q.image_device, hugeGuestRam: q.huge_guest_ram });
    }
    case "cloud-hypervisor": {
      const ch = config.hypervisor["cloud-hypervisor"];
      const { CloudHypervisor } = await import("./cloud-hypervisor/index.js");
      return CloudHypervisor.open({ binary: ch.path, rootImage: ch.image_device });
    }
    case "firecracker": {
      const { Firecracker } = await import("./firecracker/index.js");
      return Firecracker.open({ binary: config.hypervisor.firecracker.path, blockSlots: config.hypervisor.firecracker.block_slots });
    }
  }
}

let memo: Promise<Hypervisor> | undefined;

/** The VMM of the built-in configuration (QEMU), opened once per process. */
export function defaultHypervisor(): Promise<Hypervisor> {
  // The schema (zod) is loaded only here: a shim server that is handed its configuration never needs it.
  memo ??= import("../config/schema.js").then(({ defaultConfig }) => openHypervisor(defaultConfig()));
  memo.catch(() => {
    memo = undefined;
  });
  return memo;
}
