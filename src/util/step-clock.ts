// Where a multi-step operation spends its time (a pod start: docs/pool.md "Where a pod start goes").
// Each named step adds its wall milliseconds; steps run in parallel each count their own time, so
// the sum may exceed the wall time. The timeline says when each step ran (ms from the clock's start,
// whose wall time is `startedAt`), so that parallel steps, and gaps between steps, show. Cheap
// enough to run always: the shim logs one line per pod.
export class StepClock {
  private readonly started = performance.now();
  /** Wall clock (epoch ms) of the clock's start: lines up with other processes' logs. */
  readonly startedAt = Date.now();
  private readonly ms = new Map<string, number>();
  /** Per step: ms from the clock's start to its first start, and to its last end. */
  private readonly spans = new Map<string, [number, number]>();

  /** Runs `fn`, adding its wall time (also when it throws) to step `name`. */
  async time<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      this.add(name, performance.now() - t0, t0);
    }
  }

  /** Adds `ms` to step `name`; `startedAt` (a performance.now() value) defaults to `ms` before now. */
  add(name: string, ms: number, startedAt = performance.now() - ms): void {
    this.ms.set(name, (this.ms.get(name) ?? 0) + ms);
    const from = startedAt - this.started;
    const to = from + ms;
    const span = this.spans.get(name);
    this.spans.set(name, span === undefined ? [from, to] : [Math.min(span[0], from), Math.max(span[1], to)]);
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

  /** Every step as [start, end] ms from the clock's start (rounded), in the order the steps started. */
  timeline(): Record<string, [number, number]> {
    const out: Record<string, [number, number]> = {};
    for (const [k, [from, to]] of [...this.spans].sort((a, b) => a[1][0] - b[1][0])) out[k] = [Math.round(from), Math.round(to)];
    return out;
  }
}
