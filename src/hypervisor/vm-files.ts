// What a VM is known by outside its process: its state dir, console log and agent channel. Shared
// by every driver's VM and by a VM adopted from another process (the VM pool's).
import type { AgentEndpoint } from "./agent-channel/endpoint.js";

/** The files and channel a VM is known by (a running VM, or one adopted from another process). */
export interface VmFiles {
  stateDir: string;
  consoleLogPath: string;
  /** The host end of the agent channel (a unix socket), for records and cleanup. */
  agentSocketPath: string;
  agentEndpoint: AgentEndpoint;
}

/** The Vm getters that only read the VM's files. */
export abstract class VmFilesView {
  constructor(protected readonly files: VmFiles) {}
  get stateDir(): string {
    return this.files.stateDir;
  }
  get consoleLogPath(): string {
    return this.files.consoleLogPath;
  }
  get agentSocketPath(): string {
    return this.files.agentSocketPath;
  }
  get agentEndpoint(): AgentEndpoint {
    return this.files.agentEndpoint;
  }
}
