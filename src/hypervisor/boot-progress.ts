// Watches a booting guest for progress. Every boot step prints to the serial console (kernel,
// init, agent), so a console that stays silent for long means the guest is stuck, not slow: seen
// here once in many hundred TCG boots, a guest that stopped printing 1.3 s into its kernel and never
// reached its agent. Waiting out the whole dial timeout for such a guest wastes minutes; the
// watcher reports it early, with what the host can see of the stuck vCPU, so the caller can kill
// the VM and boot again.
import { readFile, stat } from "node:fs/promises";
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

/** CPU seconds (user + system) a process has used, or undefined when it is gone. */
async function processCpuSeconds(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  const text = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? ticks / 100 : undefined; // USER_HZ is 100 on Linux
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
    const poll = async (): Promise<void> => {
      const size = (await stat(vm.consoleLogPath).catch(() => undefined))?.size ?? 0;
      if (size !== lastSize) {
        lastSize = size;
        silentSince = Date.now();
        cpuAtSilence = await processCpuSeconds(vm.pid);
        return;
      }
      if (Date.now() - silentSince < silentMs) return;
      const cpuNow = await processCpuSeconds(vm.pid);
      const cpu = cpuNow !== undefined && cpuAtSilence !== undefined ? cpuNow - cpuAtSilence : undefined;
      const busy =
        cpu === undefined ? "" : `; meanwhile the VMM used ${cpu.toFixed(1)} s of CPU (${cpu < 1 ? "the guest sits idle, waiting for an event that never came" : "the guest is running but not getting anywhere"})`;
      const vcpus = canDescribeVcpus(vm) ? await vm.describeVcpus().catch((err: unknown) => `vCPU state unavailable: ${String(err)}`) : "";
      const tail = await readTail(vm.consoleLogPath, 600);
      const lastLine = tail.trim().split("\n").at(-1) ?? "";
      reject(
        new BootStalledError(
          `VM ${vm.id} stopped making progress while booting: its console was silent for ${(silentMs / 1000).toFixed(0)} s` +
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
