// Runs work once the agent has answered its first call, so that it does not compete with that
// answer for the guest's one busy vCPU at boot. Dropping the boot page cache right after "ready"
// delayed the host's first Health.Check answer by ~0.15 s of guest time under TCG (docs/guest.md
// "Where the agent's start-up goes, round 5").
import diagnostics from "node:diagnostics_channel";
import { SERVER_CALL_CHANNEL } from "../protocol/ttrpc/diagnostics.js";

/**
 * Calls `work` after the first ttRPC call any server in this process finished answering (the
 * diagnostics channel every TtrpcServer publishes on), or after `fallbackMs` when no call comes
 * (a VM nobody talks to still gets the work done). Resolves with what `work` resolves to.
 */
export function afterFirstCall<T>(work: () => Promise<T>, fallbackMs: number, channelName: string = SERVER_CALL_CHANNEL): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const fire = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      diagnostics.unsubscribe(channelName, fire);
      // After the publisher's own work (the reply is already written when it publishes).
      setImmediate(() => {
        work().then(resolve, reject);
      });
    };
    const timer = setTimeout(fire, fallbackMs);
    diagnostics.subscribe(channelName, fire);
  });
}
