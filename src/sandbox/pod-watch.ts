// Watches every process a running sandbox depends on: the VMM, virtiofsd, and the guest agent
// (its connection, and a periodic Health.Check with a deadline, which also catches a VM that is
// paused or SIGSTOPped). The first failure is reported once, as a SandboxLoss; the sandbox then
// kills what is left (sandbox.ts). Nothing is reported after stop() (a requested teardown).
// Time the VMM spent waiting for a host CPU does not count against the agent: on a crowded host a
// healthy guest can be starved longer than the timeout; a stopped VMM is not runnable, so a
// SIGSTOPped QEMU is still caught.
import { setTimeout as sleep } from "node:timers/promises";
import { isKataError } from "../util/errors.js";
import { runQueueWaitSeconds } from "../util/proc-sched.js";
import type { Vm, VmExit } from "../hypervisor/types.js";
import type { VirtiofsdExit } from "./virtiofsd.js";

export interface SandboxLoss {
  /** The part that failed first. */
  cause: "vmm" | "virtiofsd" | "agent" | "setup";
  /** One line naming the part and what happened to it, for logs and the containers' stderr. */
  message: string;
  at: Date;
}

export interface WatchedParts {
  vm: Pick<Vm, "pid" | "wait">;
  /** The pod's virtiofsd, when this sandbox started it. */
  virtiofsd?: { pid: number | undefined; exited: Promise<VirtiofsdExit> };
  agent: {
    closed: Promise<void>;
    /** One Health.Check; rejects on a deadline or a closed connection. */
    check(timeoutMs: number): Promise<void>;
    /** Why the connection ended, once it has (e.g. the guest broke the ttRPC protocol). */
    readonly closeReason?: string | undefined;
  };
  /** The agent is judged dead when no Health.Check was answered for this long (0: never). */
  livenessTimeoutMs: number;
  /** How often the agent is asked, at most (also at most a third of the timeout); default 10 s. */
  checkIntervalMs?: number;
}

/**
 * A helper's exit is attributed to the VM when the VM ended too: virtiofsd exits by itself when
 * QEMU goes, and the agent connection closes with QEMU. These graces let the VM's own exit, which
 * says more, be reported first.
 */
const virtiofsdGraceMs = 300;
const agentCloseGraceMs = 1000;
/**
 * How often the agent is asked by default, at most (and a third of the liveness timeout). Every
 * check wakes the shim, QEMU and the idle guest (agent.liveness_interval, docs/density.md).
 */
const defaultCheckIntervalMs = 10_000;

export class PodWatch {
  private reported = false;
  private readonly stopper = new AbortController();

  constructor(
    private readonly parts: WatchedParts,
    private readonly onLost: (loss: SandboxLoss) => void,
  ) {
    const vmPid = parts.vm.pid;
    void parts.vm.wait().then((exit) => this.report("vmm", describeVmEnd(exit, vmPid), 0));
    const vfs = parts.virtiofsd;
    void vfs?.exited.then((exit) => {
      if (!exit.requested) this.report("virtiofsd", `virtiofsd (pid ${vfs.pid ?? "?"}) ${describeProcessEnd(exit.code, exit.signal)}`, virtiofsdGraceMs);
    });
    void parts.agent.closed.then(() => {
      const why = parts.agent.closeReason;
      this.report("agent", `the connection to the guest agent closed${why === undefined ? "" : ` (${why})`}`, agentCloseGraceMs);
    });
    if (parts.livenessTimeoutMs > 0) void this.checkLoop(parts.livenessTimeoutMs);
  }

  /** No report after this: the sandbox is being torn down on purpose. */
  stop(): void {
    this.reported = true;
    this.stopper.abort();
  }

  private report(cause: SandboxLoss["cause"], message: string, graceMs: number): void {
    if (this.reported) return;
    if (graceMs > 0) {
      void sleep(graceMs, undefined, { ref: false }).then(() => this.report(cause, message, 0));
      return;
    }
    this.reported = true;
    this.stopper.abort();
    this.onLost({ cause, message, at: new Date() });
  }

  private async checkLoop(timeoutMs: number): Promise<void> {
    const intervalMs = Math.min(this.parts.checkIntervalMs ?? defaultCheckIntervalMs, Math.max(Math.floor(timeoutMs / 3), 100));
    const signal = this.stopper.signal;
    let lastAnswer = Date.now();
    let waitAtAnswer = await runQueueWaitSeconds(this.parts.vm.pid);
    while (!signal.aborted) {
      try {
        await sleep(intervalMs, undefined, { signal, ref: false });
      } catch {
        return; // stopped
      }
      const started = Date.now();
      try {
        // One outstanding check, given whatever is left of the window since the last answer.
        await this.parts.agent.check(Math.max(lastAnswer + timeoutMs - started, 1000));
        lastAnswer = Date.now();
        waitAtAnswer = await runQueueWaitSeconds(this.parts.vm.pid);
      } catch (err) {
        if (signal.aborted) return;
        // A closed connection is the close watcher's to report (with the VM's exit when it has one).
        if (isKataError(err, "UNAVAILABLE") || isKataError(err, "CANCELLED")) return;
        const silentMs = Date.now() - lastAnswer;
        const waitNow = await runQueueWaitSeconds(this.parts.vm.pid);
        const starvedMs = waitNow !== undefined && waitAtAnswer !== undefined ? (waitNow - waitAtAnswer) * 1000 : 0;
        if (silentMs - starvedMs >= timeoutMs) {
          this.report("agent", `the guest agent answered no health check for ${(silentMs / 1000).toFixed(0)} s (the VM is wedged, paused or stopped)`, 0);
          return;
        }
      }
    }
  }
}

function describeVmEnd(exit: VmExit, pid: number | undefined): string {
  const who = `the VM's QEMU (pid ${pid ?? "?"})`;
  switch (exit.reason) {
    case "poweroff":
      return `the guest powered off (${who} exited)`;
    case "guest-panic":
      return `the guest kernel panicked (${who} exited)`;
    case "stopped":
    case "killed":
      return `${who} was stopped`;
    case "crashed":
      return `${who} ${describeProcessEnd(exit.exitCode, exit.signal)}`;
  }
}

function describeProcessEnd(code: number | null, signal: NodeJS.Signals | null): string {
  // Neither is known for a process that is not our child (an adopted VM's virtiofsd): it just ended.
  if (code === null && signal === null) return "ended";
  return signal !== null ? `was killed by ${signal}` : `exited with status ${code}`;
}
