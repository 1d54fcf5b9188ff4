// Drops every translation in a running QEMU's TCG cache (tb_flush), at a moment the caller picks:
// the pool, before it rehearses a pod's path in a pooled VM (src/pool/pooled-vm.ts: what the cache
// holds at the offer is then that path), the idle trim (tcg-trim.ts), and a measuring tool
// (bench/pool-start-steps.ts `flush=1`). QEMU 7.2 has no monitor command for it, and inserting a
// breakpoint does not flush any more (7.2 checks breakpoints per TB), but a finished single step
// does: when the VM stops for a debug event (RUN_STATE_DEBUG: a step that ended, or a breakpoint),
// QEMU 7.2's gdbstub queues tb_flush before it sends the stop reply, and the vCPU thread runs it
// while the VM stays paused. A step that had to be interrupted (the vCPU halted: stop reply T02,
// RUN_STATE_PAUSED) flushes nothing. So: connect (the VM pauses, gdbstub.ts), step until one
// finishes, and check with HMP `info jit` that no translated block is left ("TB count 0": with
// the VM paused nothing is translated, so 0 means the flush ran), detach (the VM runs on, nothing
// left set). The VM is paused for a few round trips.
import { KataError } from "../../util/errors.js";
import { withPausedVm, type HmpRunner, type PausedVm } from "./gdbstub.js";

export { gdbPacket, takeGdbPackets, type HmpRunner } from "./gdbstub.js";

/** How many translated blocks QEMU holds (HMP `info jit`: "TB count N"). */
export function tbCount(infoJit: string): number | undefined {
  const m = /^TB count\s+(\d+)/m.exec(infoJit);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/** How long a step may run before it is interrupted, per attempt: a halted vCPU wakes on its next timer. */
const stepWaitsMs = [500, 1000, 2000, 4000];
/** Between two looks at `info jit` while the flush queued at the stop runs. */
const pollMs = 5;
/** How long the flush may take to run after a finished step's stop reply (it runs at once here; margin for a loaded host). */
const flushRunMs = 2000;

/**
 * Flushes the cache of the VM `vm` paused (a gdbstub session) and returns once QEMU holds no
 * translated block. Throws UNAVAILABLE when no step finished (the vCPU stayed halted through every
 * attempt), FAILED_PRECONDITION when steps finished but no flush followed (a QEMU whose gdbstub
 * does not flush at a debug stop, unlike 7.2's).
 */
export async function flushPausedVm(vm: PausedVm, hmp: HmpRunner): Promise<void> {
  const blocks = async (): Promise<number | undefined> => tbCount(await hmp("info jit", vm.left()));
  const replies: string[] = [];
  let unflushed = false;
  for (const waitMs of stepWaitsMs) {
    if (vm.left() <= 1) break;
    const reply = await vm.step(waitMs);
    replies.push(reply.slice(0, 3));
    // T05 (SIGTRAP): the step ended in a debug stop, whose flush was queued before this reply.
    if (!/^T05/i.test(reply)) continue;
    const until = Date.now() + Math.min(flushRunMs, vm.left());
    for (;;) {
      const n = await blocks();
      if (n === 0) return;
      if (n === undefined) throw new KataError("INTERNAL", "QEMU's `info jit` has no TB count: not QEMU 7.2's TCG?");
      if (Date.now() >= until) break;
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
    unflushed = true;
  }
  if (unflushed) {
    throw new KataError("FAILED_PRECONDITION", `QEMU did not flush its TCG cache after a single step ended in a debug stop (stop replies ${replies.join(", ")}): this QEMU's gdbstub does not flush there as 7.2's does; the VM was left as it was`);
  }
  throw new KataError("UNAVAILABLE", `QEMU did not flush its TCG cache: no single step ended in a debug stop with the cache empty (stop replies ${replies.join(", ") || "none"}); the VM was left as it was`);
}

/**
 * Flushes the TCG translation cache of the QEMU behind `hmp` (a running VM under TCG).
 * `socketPath` is where the short-lived gdbstub listens: in a directory only root can enter (the
 * VM's own). The VM runs on afterwards as before. Throws (DEADLINE_EXCEEDED, UNAVAILABLE, INTERNAL)
 * when the flush cannot be done or `timeoutMs` (the whole flush) passes; the gdbstub is closed, its
 * socket file removed and a VM left paused resumed either way.
 */
export async function flushTcgCache(hmp: HmpRunner, socketPath: string, opts: { timeoutMs?: number } = {}): Promise<void> {
  await withPausedVm(hmp, socketPath, opts.timeoutMs ?? 5000, undefined, (vm) => flushPausedVm(vm, hmp));
}
