// The host's half of the idle agent's reclaim ([hypervisor.qemu] tcg_idle_reclaim_agent): when the
// TCG idle trimmer finds the pod's VM idle (tcg-idle-policy.ts), the agent is asked to compress its
// own cold memory into the guest's zram swap (ReclaimIdleMemory, src/agent/idle-reclaim.ts) just
// before the trim. A guest that cannot (a kernel without zram, an older image) is asked once: the
// hook then turns itself off for that VM. Other failures are logged; the next idle window tries again.
import { describeError, isKataError } from "../util/errors.js";
import { createLogger } from "../util/log.js";
import type { AgentClient } from "./agent-client.js";

const log = createLogger("sandbox.idle-reclaim");

/** One reclaim: compressing ~12 MiB under TCG takes well under a second of guest time; a loaded host, more. */
export const reclaimTimeoutMs = 30_000;

/** The hook the trimmer runs before a trim (TcgIdleTrimmerOptions.beforeTrim); never throws. */
export function agentIdleReclaim(agent: Pick<AgentClient, "reclaimIdleMemory">, vmId: string): (signal: AbortSignal) => Promise<void> {
  let off = false;
  return async (signal) => {
    if (off || signal.aborted) return;
    try {
      const r = await agent.reclaimIdleMemory(reclaimTimeoutMs, signal);
      const mib = (b: number): number => Math.round((b / 1048576) * 10) / 10;
      log.info({ vm: vmId, agentMiB: mib(r.agentBytesBefore), leftMiB: mib(r.agentBytesAfter), swappedMiB: mib(r.swappedBytes), storedMiB: mib(r.storedBytes) }, "idle VM: the agent's memory compressed into the guest's zram swap");
    } catch (err) {
      if (signal.aborted) return;
      if (isKataError(err, "FAILED_PRECONDITION") || isKataError(err, "UNIMPLEMENTED")) {
        off = true;
        log.warn({ vm: vmId, err: describeError(err) }, "this VM's agent cannot reclaim its memory; not asking again");
        return;
      }
      log.warn({ vm: vmId, err: describeError(err) }, "the idle agent's reclaim failed; the VM runs on");
    }
  };
}
