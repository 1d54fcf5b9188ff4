// The pools' contents: ready VMs per shape, and one background worker that boots VMs until each
// shape has pool_size ready, one boot at a time (a boot under TCG takes seconds of CPU; the VMs
// run at refill_nice in a low-weight cgroup, priority.ts, so running pods are not starved). A VM that dies while
// pooled is removed and replaced; a shape whose boots fail backs off. A VM handed to a shim that
// does not take it (rename its dir out of vms/) within the hand-over timeout is reclaimed: stopped.
import { readFile } from "node:fs/promises";
import type { Logger } from "../util/log.js";
import { describeError } from "../util/errors.js";
import { PooledVm, type BootPolicy } from "./pooled-vm.js";
import type { PooledVmHandle, ShapeStatus } from "./protocol.js";
import { shapeKey, type PoolShape } from "./shape.js";

interface ShapePool {
  key: string;
  shape: PoolShape;
  ready: PooledVm[];
  booting: number;
  /** No boot for this shape before this time (refill delay, failure back-off). */
  notBefore: number;
  failures: number;
}

export interface RefillOptions {
  vmsDir: string;
  poolSize: number;
  maxShapes: number;
  refillDelayMs: number;
  /** A VM handed over and still under vms/ this long after was not taken: the pool stops it. */
  handoverTimeoutMs: number;
  boot: BootPolicy;
  log: Logger;
}

const maxBackoffMs = 60_000;

async function rssKiB(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  return Number(/^VmRSS:\s+(\d+)/m.exec(text)?.[1] ?? 0);
}

export class Pools {
  private readonly shapes = new Map<string, ShapePool>();
  private stopping = false;
  /** Aborts a boot in flight when the pool stops (a pooled boot under load may take minutes). */
  private readonly stopBoots = new AbortController();
  private wake: (() => void) | undefined;
  private worker: Promise<void> | undefined;
  /** Handed over, not yet seen taken: each with its hand-over timer. */
  private readonly handedOver = new Map<PooledVm, NodeJS.Timeout>();
  counters = { taken: 0, reclaimed: 0, booted: 0, bootFailures: 0 };

  constructor(private readonly opts: RefillOptions) {}

  /** Pool `shape` (if there is room for another shape); false when it is not pooled. */
  addShape(shape: PoolShape): boolean {
    const key = shapeKey(shape);
    if (this.shapes.has(key)) return true;
    if (this.shapes.size >= this.opts.maxShapes) return false;
    this.shapes.set(key, { key, shape, ready: [], booting: 0, notBefore: 0, failures: 0 });
    this.opts.log.info({ shape: key, vcpus: shape.vcpus, memoryMiB: shape.memoryMiB, tenant: shape.tenant }, "pooling a VM shape");
    this.kick();
    return true;
  }

  /** A ready VM of this shape, handed over (never given twice), or undefined. */
  take(shape: PoolShape): PooledVmHandle | undefined {
    const key = shapeKey(shape);
    const pool = this.shapes.get(key);
    if (pool === undefined) {
      this.addShape(shape);
      return undefined;
    }
    const vm = pool.ready.shift();
    if (vm === undefined) return undefined;
    pool.notBefore = Math.max(pool.notBefore, Date.now() + this.opts.refillDelayMs);
    this.counters.taken++;
    this.kick();
    const handle = vm.handOver();
    this.handedOver.set(vm, setTimeout(() => void this.reclaim(vm), this.opts.handoverTimeoutMs).unref());
    return handle;
  }

  /**
   * A VM handed over: if its dir is still under vms/, no shim took it (the shim was killed, or its
   * pod's start cut off, between the answer and its rename) and nobody else would stop it before
   * the pool stops: the pool does. Atomic against a late rename (PooledVm.reclaimUntaken).
   */
  private async reclaim(vm: PooledVm): Promise<void> {
    const timer = this.handedOver.get(vm);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.handedOver.delete(vm);
    try {
      if (!(await vm.reclaimUntaken())) return;
      this.counters.reclaimed++;
      this.opts.log.warn({ vm: vm.handle.vmId, timeoutMs: this.opts.handoverTimeoutMs }, "a VM handed to a shim was never taken (the shim died or its pod's start was cut off): stopped it");
    } catch (err) {
      this.opts.log.warn({ err: describeError(err), vm: vm.handle.vmId }, "reclaiming a VM no shim took");
    }
  }

  async status(): Promise<ShapeStatus[]> {
    const out: ShapeStatus[] = [];
    for (const p of this.shapes.values()) {
      let rss = 0;
      for (const vm of p.ready) rss += (await rssKiB(vm.handle.qemuPid)) + (await rssKiB(vm.handle.virtiofsdPid));
      out.push({ key: p.key, tenant: p.shape.tenant, vcpus: p.shape.vcpus, memoryMiB: p.shape.memoryMiB, ready: p.ready.length, booting: p.booting, rssKiB: rss });
    }
    return out;
  }

  start(): void {
    this.worker ??= this.run();
  }

  /** Stop refilling, cut a boot in flight short (it undoes itself), and destroy every pooled VM and every handed-over one not taken yet. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.stopBoots.abort();
    this.kick();
    await this.worker;
    // Handed over but not taken yet: a shim renaming it now boots its own VM instead.
    await Promise.all([...this.handedOver.keys()].map((vm) => this.reclaim(vm)));
    for (const p of this.shapes.values()) {
      for (const vm of p.ready.splice(0)) await vm.destroy().catch((err: unknown) => this.opts.log.warn({ err: describeError(err) }, "destroying a pooled VM"));
    }
  }

  private kick(): void {
    this.wake?.();
  }

  private next(): ShapePool | undefined {
    const now = Date.now();
    return [...this.shapes.values()].find((p) => p.ready.length + p.booting < this.opts.poolSize && p.notBefore <= now);
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      const pool = this.next();
      if (pool === undefined) {
        const soonest = Math.min(...[...this.shapes.values()].map((p) => p.notBefore).filter((t) => t > Date.now()));
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          if (Number.isFinite(soonest)) setTimeout(resolve, soonest - Date.now()).unref();
        });
        continue;
      }
      await this.bootOne(pool);
    }
  }

  private async bootOne(pool: ShapePool): Promise<void> {
    pool.booting++;
    const t0 = Date.now();
    try {
      const vm = await PooledVm.boot(pool.shape, this.opts.vmsDir, { ...this.opts.boot, signal: this.stopBoots.signal });
      pool.failures = 0;
      this.counters.booted++;
      if (this.stopping) {
        await vm.destroy();
        return;
      }
      pool.ready.push(vm);
      this.opts.log.info({ shape: pool.key, vm: vm.handle.vmId, ms: Date.now() - t0 }, "pooled VM ready");
      void vm.ended().then(() => this.onPooledVmEnded(pool, vm));
    } catch (err) {
      pool.failures++;
      this.counters.bootFailures++;
      const backoff = Math.min(maxBackoffMs, 2000 * 2 ** (pool.failures - 1));
      pool.notBefore = Date.now() + backoff;
      this.opts.log.warn({ shape: pool.key, err: describeError(err), backoffMs: backoff }, "booting a pooled VM failed");
    } finally {
      pool.booting--;
    }
  }

  private onPooledVmEnded(pool: ShapePool, vm: PooledVm): void {
    const i = pool.ready.indexOf(vm);
    if (i < 0) return; // taken (a shim owns it) or destroyed by stop()
    pool.ready.splice(i, 1);
    this.opts.log.warn({ shape: pool.key, vm: vm.handle.vmId }, "a pooled VM ended on its own; replacing it");
    vm.destroy().catch(() => undefined).finally(() => this.kick());
  }
}
