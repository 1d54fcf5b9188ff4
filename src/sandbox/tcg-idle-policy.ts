// When to give an idle pod VM's TCG translation cache back to the host (docs/density.md "Trimming an
// idle VM's translation cache"): a pure function of QEMU's CPU time and the cache's resident size,
// sampled over time. A trim costs the VM's next burst of work the re-translation of its code (an
// exec right after a trim: ~350 ms more QEMU CPU than a warm one), so:
// - only a VM that has been idle for the whole window is trimmed (QEMU's own CPU below a small
//   rate: an idle pod's QEMU uses ~10 millicores, a pod with an exec probe every 10 s ~20);
// - only when the cache holds enough to be worth giving back;
// - and once trimmed, it is trimmed again only after it has used `rearmCpuMs` of CPU since: a pod
//   whose periodic probe refills the cache pays the re-translation once per that much work, not
//   on every probe.

export interface TcgIdleSample {
  /** When, in ms (any monotonic clock). */
  atMs: number;
  /** QEMU's CPU time so far (user + system), ms. */
  cpuMs: number;
  /** Bytes of the translation cache the host holds now. */
  cacheBytes: number;
}

export interface TcgIdlePolicy {
  /** How long the VM must have been idle, ms ([hypervisor.qemu] tcg_idle_trim_s). */
  idleWindowMs: number;
  /** Idle: QEMU's CPU over the window at most this rate (millicores: ms of CPU per s). */
  idleMillicores: number;
  /** Worth a trim: the cache holds at least this much. */
  minCacheBytes: number;
  /** After a trim, the VM must have used this much CPU (ms) before it is trimmed again. */
  rearmCpuMs: number;
}

export const defaultTcgIdlePolicy: Omit<TcgIdlePolicy, "idleWindowMs"> = {
  idleMillicores: 30,
  minCacheBytes: 8 * 1024 * 1024,
  rearmCpuMs: 4000,
};

/**
 * Whether to trim now. `samples` are oldest first and end with the current one; `lastTrimCpuMs`
 * is QEMU's CPU time when the last trim ended (undefined: never trimmed).
 */
export function shouldTrim(samples: readonly TcgIdleSample[], lastTrimCpuMs: number | undefined, policy: TcgIdlePolicy): boolean {
  const now = samples.at(-1);
  if (now === undefined || now.cacheBytes < policy.minCacheBytes) return false;
  if (lastTrimCpuMs !== undefined && now.cpuMs - lastTrimCpuMs < policy.rearmCpuMs) return false;
  // The newest sample at least a window old: the idle rate is measured over a whole window.
  const start = windowStart(samples, now.atMs - policy.idleWindowMs);
  if (start === undefined) return false;
  const spanMs = now.atMs - start.atMs;
  if (spanMs <= 0) return false;
  return ((now.cpuMs - start.cpuMs) * 1000) / spanMs <= policy.idleMillicores;
}

/** The newest sample taken at or before `atMs` (undefined: none is that old yet). */
function windowStart(samples: readonly TcgIdleSample[], atMs: number): TcgIdleSample | undefined {
  let found: TcgIdleSample | undefined;
  for (const s of samples) {
    if (s.atMs > atMs) break;
    found = s;
  }
  return found;
}

/** The samples still needed: the newest one at least a window old, and every one after it. */
export function pruneSamples(samples: readonly TcgIdleSample[], nowMs: number, idleWindowMs: number): TcgIdleSample[] {
  let keepFrom = 0;
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i];
    if (s !== undefined && s.atMs <= nowMs - idleWindowMs) keepFrom = i;
  }
  return samples.slice(keepFrom);
}
