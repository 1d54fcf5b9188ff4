// Where one API-driven VM's files live inside its state dir (Cloud Hypervisor, Firecracker). Unix
// socket paths are limited to 107 bytes, so the names are short and the limit is checked up front.
import { join } from "node:path";
import { KataError } from "../../util/errors.js";
import { AGENT_VSOCK_PORT } from "../../protocol/contract/guest.js";
import type { VmFiles } from "../vm-files.js";

export interface RestVmLayout {
  stateDir: string;
  /** The VMM's REST API socket. */
  apiSocketPath: string;
  /** The hybrid vsock socket the VMM listens on for host-initiated connections. */
  vsockSocketPath: string;
  consoleLogPath: string;
}

const sunPathMax = 107;

export function restVmLayout(stateDir: string): RestVmLayout {
  const layout = {
    stateDir,
    apiSocketPath: join(stateDir, "api.sock"),
    vsockSocketPath: join(stateDir, "vsock.sock"),
    consoleLogPath: join(stateDir, "console.log"),
  };
  for (const sock of [layout.apiSocketPath, layout.vsockSocketPath]) {
    if (Buffer.byteLength(sock) > sunPathMax) {
      throw new KataError("INVALID_ARGUMENT", `socket path ${sock} is longer than ${sunPathMax} bytes; use a shorter state dir`);
    }
  }
  return layout;
}

/** What a REST-driven VM is known by: its files, and the agent behind the VMM's hybrid vsock. */
export function restVmFiles(layout: RestVmLayout): VmFiles {
  return {
    stateDir: layout.stateDir,
    consoleLogPath: layout.consoleLogPath,
    agentSocketPath: layout.vsockSocketPath,
    agentEndpoint: { transport: "hybrid-vsock", path: layout.vsockSocketPath, port: AGENT_VSOCK_PORT },
  };
}
