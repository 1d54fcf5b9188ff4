// vsock: the agent channel on hosts with /dev/vhost-vsock. Node has no AF_VSOCK sockets, so this
// agent build cannot listen on vsock itself; it reports the device and keeps serving the
// virtio-serial port, which works everywhere QEMU runs. (A vsock listener needs a native helper:
// see docs/guest.md.)
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
