// Watches a booting guest for progress. Every boot step prints to the serial console (kernel,
// init, agent), so a console that stays silent for long means the guest is stuck, not slow: seen
// here once in many hundred TCG boots, a guest that stopped printing 1.3 s into its kernel and never
// reached its agent. Waiting out the whole dial timeout for such a guest wastes minutes; the
// watcher reports it early, with what the host can see of the stuck vCPU, so the caller can kill
// the VM and boot again.
//
// Silence is counted only while the VMM could run: time its threads spent waiting for a host CPU
// (run_delay in /proc/<pid>/task/*/schedstat) is not the guest's fault. On a host crowded with
// VMs (20 pods on 2 cores) a healthy guest can be starved of CPU for longer than the stall
// timeout; it is slow, not stuck, and killing it only adds another boot to the queue.
import { stat } from "node:fs/promises";
import { processCpuSeconds, runQueueWaitSeconds } from "../util/proc-sched.js";
import { KataError } from "../util/errors.js";
import { readTail } from "./console-tail.js";
import type { Vm } from "./types.js";

/** A VMM that can describe its vCPUs (QEMU: `info registers`), for stuck-boot reports. */
export interface VcpuDescriber {
  describeVcpus(): Promise<string>;
}

function canDescribeVcpus(vm: Vm): vm is Vm & VcpuDescriber {
  return typeof (vm as Partial<VcpuDescriber>).describeVcpus === "function";
}

/** The boot made no visible progress for `silentMs`: the VM is stuck; retrying may help. */
export class BootStalledError extends KataError {
  constructor(message: string) {
    super("DEADLINE_EXCEEDED", message);
    this.name = "BootStalledError";
  }
}

export interface BootProgressWatch {
  /** Rejects with BootStalledError once the console was silent for silentMs; never resolves. */
  stalled: Promise<never>;
  stop(): void;
}

export function watchBootProgress(vm: Vm, silentMs: number, pollMs = 500): BootProgressWatch {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const stalled = new Promise<never>((_resolve, reject) => {
    let lastSize = -1;
    let silentSince = Date.now();
    let cpuAtSilence: number | undefined;
    let waitAtSilence: number | undefined;
    const poll = async (): Promise<void> => {
      const size = (await stat(vm.consoleLogPath).catch(() => undefined))?.size ?? 0;
      if (size !== lastSize) {
        lastSize = size;
        silentSince = Date.now();
        cpuAtSilence = await processCpuSeconds(vm.pid);
        waitAtSilence = await runQueueWaitSeconds(vm.pid);
        return;
      }
      if (Date.now() - silentSince < silentMs) return;
      const waitNow = await runQueueWaitSeconds(vm.pid);
      const starvedMs = waitNow !== undefined && waitAtSilence !== undefined ? (waitNow - waitAtSilence) * 1000 : 0;
      if (Date.now() - silentSince - starvedMs < silentMs) return;
      const cpuNow = await processCpuSeconds(vm.pid);
      const cpu = cpuNow !== undefined && cpuAtSilence !== undefined ? cpuNow - cpuAtSilence : undefined;
      const busy =
        cpu === undefined ? "" : `; meanwhile the VMM used ${cpu.toFixed(1)} s of CPU (${cpu < 1 ? "the guest sits idle, waiting for an event that never came" : "the guest is running but not getting anywhere"})`;
      const vcpus = canDescribeVcpus(vm) ? await vm.describeVcpus().catch((err: unknown) => `vCPU state unavailable: ${String(err)}`) : "";
      const tail = await readTail(vm.consoleLogPath, 600);
      const lastLine = tail.trim().split("\n").at(-1) ?? "";
      const silentS = (Date.now() - silentSince) / 1000;
      const starved = starvedMs >= 1000 ? ` (${(starvedMs / 1000).toFixed(0)} s of it waiting for a host CPU)` : "";
      reject(
        new BootStalledError(
          `VM ${vm.id} stopped making progress while booting: its console was silent for ${silentS.toFixed(0)} s${starved}` +
            `${busy}${vcpus === "" ? "" : `; ${vcpus}`}; last console line: ${lastLine === "" ? "(none)" : JSON.stringify(lastLine)}`,
        ),
      );
      stopped = true;
    };
    const tick = (): void => {
      if (stopped) return;
      poll().then(
        () => {
          if (!stopped) timer = setTimeout(tick, pollMs);
        },
        () => {
          if (!stopped) timer = setTimeout(tick, pollMs);
        },
      );
    };
    tick();
  });
  // A watch nobody awaits any more (the boot finished first) must not surface as unhandled.
  stalled.catch(() => undefined);
  return {
    stalled,
    stop: () => {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
    },
  };
}
