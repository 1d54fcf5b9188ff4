// Where one VM's files live inside its state dir. Unix socket paths are limited to 107 bytes, so
// the names are short and the limit is checked before QEMU would fail on it.
import { join } from "node:path";
import { KataError } from "../../util/errors.js";
import type { VmFiles } from "../vm-files.js";

export interface VmLayout {
  stateDir: string;
  qmpSocketPath: string;
  agentSocketPath: string;
  consoleLogPath: string;
  /** QEMU's serial chardev connects here; console-log.ts writes what arrives to consoleLogPath. */
  consoleSocketPath: string;
  pidFilePath: string;
}

const sunPathMax = 107;

export function vmLayout(stateDir: string): VmLayout {
  const layout = {
    stateDir,
    qmpSocketPath: join(stateDir, "qmp.sock"),
    agentSocketPath: join(stateDir, "agent.sock"),
    consoleLogPath: join(stateDir, "console.log"),
    consoleSocketPath: join(stateDir, "console.sock"),
    pidFilePath: join(stateDir, "qemu.pid"),
  };
  for (const sock of [layout.qmpSocketPath, layout.agentSocketPath, layout.consoleSocketPath]) {
    if (Buffer.byteLength(sock) > sunPathMax) {
      throw new KataError("INVALID_ARGUMENT", `socket path ${sock} is longer than ${sunPathMax} bytes; use a shorter state dir`);
    }
  }
  return layout;
}

/** What a QEMU VM is known by: its files, and the agent's virtio-serial port on a unix socket. */
export function qemuVmFiles(layout: VmLayout): VmFiles {
  return {
    stateDir: layout.stateDir,
    consoleLogPath: layout.consoleLogPath,
    agentSocketPath: layout.agentSocketPath,
    agentEndpoint: { transport: "unix", path: layout.agentSocketPath },
  };
}
