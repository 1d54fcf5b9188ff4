// What a driver for a REST-API VMM supplies (how to start it, reach its API, boot and stop a VM),
// and how RestVm reads a VMM process's exit.
import type { ProcessExit } from "../vmm-process.js";
import type { VmConfig, VmExit } from "../types.js";
import type { ApiClient } from "./api-client.js";
import type { RestVmLayout } from "./layout.js";

/** What a driver tells RestVm about its VMM. */
export interface RestVmmDriver {
  /** Configuration name, for messages: "cloud-hypervisor", "firecracker". */
  readonly name: string;
  readonly binary: string;
  readonly installHint: string;
  /** The VMM's argv (API socket, id). */
  args(config: VmConfig, layout: RestVmLayout): string[];
  api(layout: RestVmLayout): ApiClient;
  /** One cheap request that succeeds once the API serves. */
  ping(api: ApiClient, timeoutMs: number): Promise<void>;
  /** Describe the VM to the VMM and start the guest. */
  boot(api: ApiClient, config: VmConfig, layout: RestVmLayout): Promise<void>;
  /**
   * Ask the VMM to stop the guest and exit. Resolves true when asked (RestVm then waits for the exit),
   * false when the VMM has no such request (RestVm goes straight to SIGTERM).
   */
  shutdown(api: ApiClient, timeoutMs: number): Promise<boolean>;
}

export function describeExit(exit: ProcessExit): string {
  return exit.signal !== null ? `signal ${exit.signal}` : `exit code ${exit.code}`;
}

/**
 * Both VMMs exit when the guest powers off or reboots (kata-ts guests reboot on panic: the VMM
 * then exits too, as neither is asked to restart a guest), so an unrequested exit 0 is the guest's
 * doing; anything else unrequested is a crash.
 */
export function classifyExit(pexit: ProcessExit, requested: "quit" | "kill" | undefined): VmExit["reason"] {
  if (requested === "kill" && pexit.signal !== null) return "killed";
  if (requested !== undefined) return pexit.code === 0 || pexit.signal === "SIGTERM" ? "stopped" : "killed";
  return pexit.code === 0 ? "poweroff" : "crashed";
}
