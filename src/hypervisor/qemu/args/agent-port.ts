// The agent channel: a virtio-serial port named e.g. "agent.0" whose host end is a unix socket
// served by QEMU (server=on,wait=off: QEMU listens, the host side connects when it likes). The
// guest agent finds the port by name under /sys/class/virtio-ports.
import { qemuOpts } from "./opts.js";

export interface AgentPortOptions {
  socketPath: string;
  portName: string;
}

export function renderAgentPort(opts: AgentPortOptions): string[] {
  return [
    "-device",
    qemuOpts("virtio-serial-device", { id: "vser0" }),
    "-chardev",
    qemuOpts("socket", { id: "agent0", path: opts.socketPath, server: true, wait: false }),
    "-device",
    qemuOpts("virtserialport", { bus: "vser0.0", chardev: "agent0", name: opts.portName }),
  ];
}
