// The agent channel: a virtio-serial port named e.g. "agent.0" whose host end is a unix socket
// served by QEMU (server=on,wait=off: QEMU listens, the host side connects when it likes). The
// guest agent finds the port by name under /sys/class/virtio-ports.
import { virtioDevice, type VirtioTransport } from "./machine.js";
import { qemuOpts } from "./opts.js";

/**
 * Port 0 (a console nobody uses) and the agent's port. QEMU's default is 31, and the guest driver
 * sets up an input and an output virtqueue for every possible port: 2 MiB of guest RAM for 29
 * ports that never exist (docs/guest.md "Guest RAM after boot").
 */
export const SERIAL_MAX_PORTS = 2;

export interface AgentPortOptions {
  socketPath: string;
  portName: string;
  transport: VirtioTransport;
}

export function renderAgentPort(opts: AgentPortOptions): string[] {
  return [
    "-device",
    qemuOpts(virtioDevice("virtio-serial", opts.transport), { id: "vser0", max_ports: SERIAL_MAX_PORTS }),
    "-chardev",
    qemuOpts("socket", { id: "agent0", path: opts.socketPath, server: true, wait: false }),
    "-device",
    qemuOpts("virtserialport", { bus: "vser0.0", chardev: "agent0", name: opts.portName }),
  ];
}
