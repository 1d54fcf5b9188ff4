// Where the host reaches a VM's agent. Each VMM offers one kind of channel; the sandbox layer dials
// it without knowing which VMM is behind it.
//
// - "unix": a stream socket the VMM itself connects to the agent's port (QEMU's chardev socket
//   for a virtio-serial port). Connecting is enough.
// - "hybrid-vsock": the VMM proxies vsock over a unix socket (Cloud Hypervisor, Firecracker). The
//   host connects, writes `CONNECT <port>\n`, and reads `OK <n>\n` before the stream carries data.
// - "vsock": kernel AF_VSOCK to (cid, port), through vhost-vsock on the host.

export type AgentEndpoint =
  | { transport: "unix"; path: string }
  | { transport: "hybrid-vsock"; path: string; port: number }
  | { transport: "vsock"; cid: number; port: number };

export function describeEndpoint(e: AgentEndpoint): string {
  switch (e.transport) {
    case "unix":
      return `unix socket ${e.path}`;
    case "hybrid-vsock":
      return `hybrid vsock ${e.path} port ${e.port}`;
    case "vsock":
      return `vsock cid ${e.cid} port ${e.port}`;
  }
}
