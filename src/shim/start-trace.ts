// A pod start, step by step, for the shim's log (docs/pool.md "Where a pod start goes"): the
// sandbox layer times its own steps on a StepClock, and every agent call made meanwhile adds its
// round trip as `agent.<Method>` (from the ttRPC client's diagnostics channel).
import diagnostics from "node:diagnostics_channel";
import { CLIENT_CALL_CHANNEL, type CallEvent } from "../protocol/ttrpc/diagnostics.js";
import type { StepClock } from "../util/step-clock.js";

/** Adds each agent call's round trip to `clock` until the returned function is called. */
export function traceAgentCalls(clock: StepClock): () => void {
  const channel = diagnostics.channel(CLIENT_CALL_CHANNEL);
  const onCall = (msg: unknown): void => {
    const ev = msg as CallEvent;
    // The shim's events to containerd go through a ttRPC client too: not the agent's.
    if (ev.service.startsWith("containerd.")) return;
    clock.add(`agent.${ev.method}`, ev.durationMs);
  };
  channel.subscribe(onCall);
  return () => channel.unsubscribe(onCall);
}
