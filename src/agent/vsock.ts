// Whether the guest has a vsock device: the agent reports a kernel parameter that asks for vsock on
// a VM that offers none (no host connection could reach the bridge in vsock-bridge.ts).
import { readdirSync } from "node:fs";

/**
 * Whether a virtio vsock device is bound. /dev/vsock alone does not tell: it exists as soon as the
 * vsock module is loaded, device or not.
 */
export function vsockPresent(driverDir = "/sys/bus/virtio/drivers/vmw_vsock_virtio_transport"): boolean {
  try {
    return readdirSync(driverDir).some((e) => e.startsWith("virtio"));
  } catch {
    return false;
  }
}
