// OOM events come from the guest, which is untrusted: a guest can answer GetOOMEvent as fast as
// the shim asks, with any container id. The shim pulls them at a bounded rate (so a flood costs
// it a bounded amount of CPU; the backlog stays in the guest), forwards only ids of containers it
// knows, and forwards at most one event per container per coalescing window: containerd's CRI
// plugin only uses /tasks/oom to mark a container OOMKilled, so repeats carry nothing.
import type { Logger } from "../util/log.js";

export interface OomLimits {
  /** Events pulled from the guest per second, on average. */
  ratePerSecond: number;
  /** Events pulled back to back before the rate applies. */
  burst: number;
  /** At most one event per container is forwarded in this window. */
  coalesceMs: number;
}

export const defaultOomLimits: OomLimits = { ratePerSecond: 20, burst: 50, coalesceMs: 1000 };

/** Counts of what the filter did, for logs and tests. */
export interface OomStats {
  received: number;
  forwarded: number;
  unknown: number;
  coalesced: number;
}

/** Token bucket: take() resolves once the rate allows one more event. */
export class Pacer {
  private tokens: number;
  private last = performance.now();

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }

  async take(signal?: AbortSignal): Promise<void> {
    for (;;) {
      const now = performance.now();
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.ratePerSecond);
      this.last = now;
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return;
      }
      const waitMs = Math.ceil(((1 - this.tokens) / this.ratePerSecond) * 1000);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, waitMs);
        signal?.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
      });
      if (signal?.aborted === true) return;
    }
  }
}

/** Decides which guest OOM events reach containerd. */
export class OomFilter {
  readonly stats: OomStats = { received: 0, forwarded: 0, unknown: 0, coalesced: 0 };
  private readonly lastForwarded = new Map<string, number>();
  private lastWarn = -Infinity;

  constructor(
    private readonly isKnown: (containerId: string) => boolean,
    private readonly log: Logger,
    private readonly coalesceMs = defaultOomLimits.coalesceMs,
  ) {}

  /** True when the event for this id should be forwarded now. */
  accept(containerId: string): boolean {
    this.stats.received++;
    const now = performance.now();
    if (!this.isKnown(containerId)) {
      this.stats.unknown++;
      // Once per 10 s at most: the log must not become the next unbounded thing a guest can grow.
      if (now - this.lastWarn > 10_000) {
        this.lastWarn = now;
        this.log.warn(
          { containerId: containerId.slice(0, 80), stats: this.stats },
          "guest reported an OOM event for a container this shim does not know: dropped (further ones are counted, not logged, for 10 s)",
        );
      }
      return false;
    }
    const last = this.lastForwarded.get(containerId);
    if (last !== undefined && now - last < this.coalesceMs) {
      this.stats.coalesced++;
      return false;
    }
    this.lastForwarded.set(containerId, now);
    this.stats.forwarded++;
    return true;
  }
}

/**
 * Pull OOM events with `next` until it fails or `signal` aborts, at most at the pacer's rate, and
 * hand each to `listener`. Resolves when the stream ends (the connection closed, the VM stopped).
 */
export async function pumpOomEvents(
  next: (signal: AbortSignal) => Promise<string>,
  listener: (containerId: string) => void,
  signal: AbortSignal,
  limits: Pick<OomLimits, "ratePerSecond" | "burst"> = defaultOomLimits,
): Promise<void> {
  const pacer = new Pacer(limits.ratePerSecond, limits.burst);
  while (!signal.aborted) {
    await pacer.take(signal);
    if (signal.aborted) return;
    listener(await next(signal));
  }
}
