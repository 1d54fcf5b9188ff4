// Where a multi-step operation spends its time (a pod start: docs/pool.md "Where a pod start goes").
// Each named step adds its wall milliseconds; steps run in parallel each count their own time, so
// the sum may exceed the wall time. Cheap enough to run always: the shim logs one line per pod.
export class StepClock {
  private readonly started = performance.now();
  private readonly ms = new Map<string, number>();

  /** Runs `fn`, adding its wall time (also when it throws) to step `name`. */
  async time<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      this.add(name, performance.now() - t0);
    }
  }

  add(name: string, ms: number): void {
    this.ms.set(name, (this.ms.get(name) ?? 0) + ms);
  }

  /** Milliseconds since the clock was made. */
  elapsed(): number {
    return performance.now() - this.started;
  }

  /** Every step's milliseconds (rounded), in the order the steps first finished, plus `total`. */
  summary(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of this.ms) out[k] = Math.round(v);
    out.total = Math.round(this.elapsed());
    return out;
  }
}
