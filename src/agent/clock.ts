// The guest clock. The guest has no synchronised clock (no RTC sync, no NTP): the host sends its
// wall clock with PrepareSandbox (a pooled VM, at pool time) and CreateSandbox. Setting it spawns
// busybox `date` (~100+ ms under TCG, whole seconds only), so the agent compares first and sets it
// only when it is off by more than CLOCK_BOUND_MS: a pooled VM's clock, set at pool time, is
// normally within it at adoption (the guest's clocksource follows the host's time).
import { run } from "../util/exec.js";

/** Largest difference between the guest's and the host's wall clock left alone. */
export const CLOCK_BOUND_MS = 1000;

export type ClockSetter = (epochMs: number) => Promise<void>;

/** busybox `date -s @SECONDS` (best effort: date may refuse). */
export const setClockWithDate: ClockSetter = async (epochMs) => {
  await run("date", ["-u", "-s", `@${Math.round(epochMs / 1000)}`], { timeoutMs: 10_000, allowNonZero: true });
};

/**
 * Sets the guest clock to `hostTime` when it is off by more than the bound; answers whether it did.
 * `receivedAt` (guest Date.now() when the request arrived) carries the host's time forward by the
 * time spent here before the setter runs.
 */
export async function syncClock(hostTime: Date, opts: { receivedAt?: number; now?: () => number; set?: ClockSetter; boundMs?: number } = {}): Promise<boolean> {
  const now = opts.now ?? Date.now;
  const receivedAt = opts.receivedAt ?? now();
  const skew = receivedAt - hostTime.getTime();
  if (Math.abs(skew) <= (opts.boundMs ?? CLOCK_BOUND_MS)) return false;
  await (opts.set ?? setClockWithDate)(hostTime.getTime() + (now() - receivedAt));
  return true;
}
