// Watches one pod VM's QEMU while it runs and gives its TCG translation cache back to the host when
// the VM has been idle long enough (the decision is tcg-idle-policy.ts's; the trim is the VM's:
// src/hypervisor/qemu/tcg-trim.ts). Samples QEMU's CPU time (/proc/PID/stat) and the cache's
// resident size every few seconds. Started by the sandbox once the VM is the pod's (a pooled VM is
// never trimmed while it waits: its rehearsed cache is what the pool offers, docs/pool.md), stopped
// before the sandbox's teardown: a trim in flight is cut short (the VM resumed) and not waited on
// for longer than a moment.
import { readFile } from "node:fs/promises";
import { describeError, isKataError } from "../util/errors.js";
import { createLogger } from "../util/log.js";
import { tcgJitFile } from "../hypervisor/qemu/tcg-trim.js";
import type { TcgCacheTrimmable, Vm } from "../hypervisor/types.js";
import { defaultTcgIdlePolicy, pruneSamples, shouldTrim, type TcgIdlePolicy, type TcgIdleSample } from "./tcg-idle-policy.js";

const log = createLogger("sandbox.tcg-trim");

/** Linux's USER_HZ: /proc/PID/stat counts CPU time in these ticks (100 on every Linux kata-ts runs on). */
const ticksPerSecond = 100;
/** How long one trim may take (the VM is paused for it: normally ~30 ms). */
const trimTimeoutMs = 5000;
/** How long stop() waits for a trim it cut short to resume the VM. */
const stopWaitMs = 1000;

/** QEMU's CPU time so far in ms (utime + stime of /proc/PID/stat); undefined once it is gone. */
export async function processCpuMs(pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  if (stat === undefined) return undefined;
  // Fields after the command (which may hold spaces) in parentheses: state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return ((utime + stime) * 1000) / ticksPerSecond;
}

export interface TcgIdleTrimmerOptions {
  /** [hypervisor.qemu] tcg_idle_trim_s in ms. */
  idleWindowMs: number;
  /** Between two samples; default 5 s (a fifth of the window when that is shorter). */
  sampleMs?: number;
  policy?: Partial<Omit<TcgIdlePolicy, "idleWindowMs">>;
  /** Called after each trim (tests, logs). */
  onTrim?: (freedBytes: number) => void;
  /**
   * Run before each trim, the VM being idle ([hypervisor.qemu] tcg_idle_reclaim_agent: the agent
   * compresses its memory, agent-idle-reclaim.ts). Before, so that the code the guest ran for it
   * leaves TCG's cache with the trim; it never throws, and its own CPU does not count toward the rearm.
   */
  beforeTrim?: (signal: AbortSignal) => Promise<void>;
}

export class TcgIdleTrimmer {
  private samples: TcgIdleSample[] = [];
  private lastTrimCpuMs: number | undefined;
  /**
   * A trim that followed beforeTrim (the agent's reclaim) gets one follow-up once the VM has been
   * idle a whole window again: the reclaimed guest keeps running code it had not run since the
   * trim (swap-ins, free page reporting at order 0 for a minute), which TCG translates anew.
   */
  private followUpDue = false;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private readonly abort = new AbortController();
  private readonly policy: TcgIdlePolicy;
  /** Trims done so far. */
  trims = 0;

  constructor(
    private readonly vm: Vm & TcgCacheTrimmable,
    private readonly opts: TcgIdleTrimmerOptions,
  ) {
    this.policy = { ...defaultTcgIdlePolicy, ...opts.policy, idleWindowMs: opts.idleWindowMs };
    const sampleMs = opts.sampleMs ?? Math.max(200, Math.min(5000, Math.floor(opts.idleWindowMs / 5)));
    this.timer = setInterval(() => {
      if (this.inFlight === undefined) this.inFlight = this.tick().finally(() => (this.inFlight = undefined));
    }, sampleMs);
    this.timer.unref();
  }

  /** No more samples or trims; a trim in flight is cut short (the VM resumed) and waited on for at most a moment. */
  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.abort.abort();
    const pending = this.inFlight;
    if (pending !== undefined) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([pending, new Promise<void>((resolve) => (timer = setTimeout(resolve, stopWaitMs)))]);
      clearTimeout(timer);
    }
  }

  private async tick(): Promise<void> {
    const pid = this.vm.pid;
    if (pid === undefined || this.abort.signal.aborted) return;
    const [cpuMs, file] = await Promise.all([processCpuMs(pid), tcgJitFile(pid).then((f) => ({ ok: true as const, f }), (err: unknown) => ({ ok: false as const, err }))]);
    if (cpuMs === undefined || this.abort.signal.aborted) return;
    if (!file.ok) {
      // A VM started without split-wx (a pool that predates the setting) cannot be trimmed: say so once.
      if (isKataError(file.err, "FAILED_PRECONDITION")) {
        log.warn({ vm: this.vm.id, err: describeError(file.err) }, "this VM's TCG cache cannot be trimmed; not trying again");
        void this.stop();
      }
      return;
    }
    const now: TcgIdleSample = { atMs: performance.now(), cpuMs, cacheBytes: file.f.residentBytes };
    this.samples = pruneSamples([...this.samples, now], now.atMs, this.policy.idleWindowMs);
    const followUp = this.followUpDue;
    if (!shouldTrim(this.samples, followUp ? undefined : this.lastTrimCpuMs, this.policy)) return;
    this.followUpDue = false;
    if (!followUp) await this.opts.beforeTrim?.(this.abort.signal);
    if (this.abort.signal.aborted) return;
    try {
      const r = await this.vm.trimTcgCache(trimTimeoutMs, this.abort.signal);
      this.lastTrimCpuMs = (await processCpuMs(pid)) ?? cpuMs;
      this.followUpDue = !followUp && this.opts.beforeTrim !== undefined;
      // A follow-up's idle window starts after this trim, not before the reclaim.
      if (this.followUpDue) this.samples = [{ atMs: performance.now(), cpuMs: this.lastTrimCpuMs, cacheBytes: r.afterBytes }];
      const freed = Math.max(0, r.beforeBytes - r.afterBytes);
      // Counted with its log line and onTrim, all in one turn, so whoever reads the count sees both.
      this.trims++;
      log.info({ vm: this.vm.id, freedMiB: Math.round(freed / 1048576), leftKiB: Math.round(r.afterBytes / 1024) }, "idle VM: TCG translation cache given back to the host");
      this.opts.onTrim?.(freed);
    } catch (err) {
      if (this.abort.signal.aborted) return;
      // Not fatal to the pod: the VM was resumed; the next idle window tries again.
      this.lastTrimCpuMs = cpuMs;
      log.warn({ vm: this.vm.id, err: describeError(err) }, "trimming an idle VM's TCG cache failed; the VM runs on");
    }
  }
}
