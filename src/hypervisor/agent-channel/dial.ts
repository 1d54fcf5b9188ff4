// Dial a VM's agent endpoint and hand back the byte stream (the caller runs ttRPC on it).
import net from "node:net";
import type { Duplex } from "node:stream";
import { KataError } from "../../util/errors.js";
import type { AgentEndpoint } from "./endpoint.js";
import { dialHybridVsock, type DialOptions } from "./hybrid-vsock.js";

export { describeEndpoint, type AgentEndpoint } from "./endpoint.js";
export { connectHybridVsock, dialHybridVsock, type DialOptions } from "./hybrid-vsock.js";

export function dialAgent(endpoint: AgentEndpoint, opts: DialOptions): Promise<Duplex> {
  switch (endpoint.transport) {
    case "unix":
      return connectUnix(endpoint.path, opts.timeoutMs);
    case "hybrid-vsock":
      return dialHybridVsock(endpoint.path, endpoint.port, opts);
    case "vsock":
      // node:net has no AF_VSOCK and no well-kept npm package provides it (the one published addon
      // is a 0.0.x prebuilt binary); this host also lacks /dev/vhost-vsock. Say so instead of guessing.
      return Promise.reject(
        new KataError(
          "UNIMPLEMENTED",
          `kernel vsock (cid ${endpoint.cid} port ${endpoint.port}) is not available: Node has no AF_VSOCK sockets; ` +
            "use a VMM with hybrid vsock (cloud-hypervisor, firecracker) or QEMU's virtio-serial channel",
        ),
      );
  }
}

function connectUnix(path: string, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection(path);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new KataError("DEADLINE_EXCEEDED", `could not connect to agent socket ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.once("connect", () => {
      clearTimeout(timer);
      sock.removeAllListeners("error");
      resolve(sock);
    });
    sock.once("error", (err) => {
      clearTimeout(timer);
      reject(new KataError("UNAVAILABLE", `cannot connect to agent socket ${path}: ${err.message}`, { cause: err }));
    });
  });
}
