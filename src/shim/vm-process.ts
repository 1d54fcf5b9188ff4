// PodProcess implementations over the sandbox layer. A container's init and an exec are both
// started by Start (containerd's Create/Exec only prepare them), so the agent is asked to run them
// then. Output flows agent -> PassThrough -> FifoIo; stdin the other way. A process whose VM or
// agent connection is lost counts as killed (137): Wait must always answer. When the pod is lost
// (a part died, the guest wedged: src/sandbox/pod-watch.ts), the last line of its stderr (stdout
// with a terminal) names the cause, so `kubectl logs` and the termination message say why.
import { PassThrough } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { SandboxContainer } from "../sandbox/container.js";
import type { SandboxProcess } from "../sandbox/process.js";
import type { OciProcess } from "../protocol/contract/oci.js";
import type { Logger } from "../util/log.js";
import { KataError, describeError, isKataError } from "../util/errors.js";
import type { PodProcess, ProcessExit } from "./pod-port.js";

const lostExit = 137;
/**
 * A failed agent call or a closed connection may come just before the pod's loss is known (the
 * connection drops as QEMU dies; the watcher waits a moment to name the cause): wait this long.
 */
const lossAttributionMs = 3000;

/** Why the pod was lost, once it is (never resolves for a pod that runs on). */
export type PodLoss = Promise<{ message: string }>;

export class VmProcess implements PodProcess {
  readonly stdin: PassThrough | undefined;
  readonly stdout = new PassThrough();
  readonly stderr: PassThrough | undefined;
  private proc: SandboxProcess | undefined;
  private resolveExit!: (exit: ProcessExit) => void;
  private readonly exit = new Promise<ProcessExit>((r) => (this.resolveExit = r));
  private settled = false;

  constructor(
    /** The pid containerd sees: the VMM's, like Kata (guest pids mean nothing on the host). */
    readonly pid: number,
    private readonly launch: () => Promise<SandboxProcess>,
    opts: { terminal: boolean; stdin: boolean },
    private readonly log: Logger,
    private readonly podLost: PodLoss = new Promise(() => undefined),
  ) {
    this.stdin = opts.stdin ? new PassThrough() : undefined;
    this.stderr = opts.terminal ? undefined : new PassThrough();
  }

  /**
   * A process already running in the guest, started by another process (a reattached pod): its
   * output, wait and stdin are pumped on this process's agent connection; start() must not be called.
   */
  static running(pid: number, proc: SandboxProcess, opts: { terminal: boolean; stdin: boolean }, log: Logger, podLost?: PodLoss): VmProcess {
    const launch = (): Promise<SandboxProcess> => Promise.reject(new KataError("FAILED_PRECONDITION", `process ${JSON.stringify(proc.execId)} of ${proc.containerId} runs already (reattached): it cannot be started again`));
    const p = new VmProcess(pid, launch, opts, log, podLost);
    p.attach(proc);
    return p;
  }

  async start(): Promise<void> {
    let proc: SandboxProcess;
    try {
      proc = await this.launch();
    } catch (err) {
      const loss = connectionLost(err) ? await this.lossWithin(lossAttributionMs) : undefined;
      if (loss === undefined) throw err;
      throw new KataError("UNAVAILABLE", `cannot start the process: ${loss.message}; the pod's VM was stopped`, { cause: err });
    }
    this.attach(proc);
  }

  /** Pumps its streams and waits for its exit. */
  private attach(proc: SandboxProcess): void {
    this.proc = proc;
    this.pump(proc.pumpOutput("stdout", this.stdout), this.stdout, "stdout");
    if (this.stderr !== undefined) this.pump(proc.pumpOutput("stderr", this.stderr), this.stderr, "stderr");
    if (this.stdin !== undefined) {
      proc.pumpInput(this.stdin).catch((err: unknown) => this.log.warn({ err: describeError(err) }, "stdin pump failed"));
    }
    proc.wait().then(
      (s) => this.finish({ exitStatus: s.status, exitedAt: s.exitedAt }),
      async (err: unknown) => {
        const loss = connectionLost(err) ? await this.lossWithin(lossAttributionMs) : undefined;
        if (loss !== undefined) return this.lose(loss.message);
        this.log.warn({ err: describeError(err) }, "lost the process's exit (VM or agent gone)");
        this.finish({ exitStatus: lostExit, exitedAt: new Date() });
      },
    );
  }

  private pump(done: Promise<number>, out: PassThrough, which: string): void {
    done.then(
      () => out.end(),
      async (err: unknown) => {
        this.log.debug({ err: describeError(err), which }, "output pump ended");
        // Kept open a moment so the cause of a lost pod can still be written (lose()).
        if (connectionLost(err)) await this.lossWithin(lossAttributionMs);
        out.end();
      },
    );
  }

  /** The pod's loss if it is known within `ms`. */
  private lossWithin(ms: number): Promise<{ message: string } | undefined> {
    return Promise.race([this.podLost, sleep(ms, undefined, { ref: false })]);
  }

  /** `all`: every process of the container (Kill with all, e.g. `ctr task kill --all`). */
  async signal(signal: number, all = false): Promise<void> {
    if (this.proc === undefined) {
      // Killed before it ever ran: it exits with that signal and never starts.
      this.stdout.end();
      this.stderr?.end();
      this.finish({ exitStatus: 128 + signal, exitedAt: new Date() });
      return;
    }
    try {
      await this.proc.signal(signal, all);
    } catch (err) {
      // The pod was lost under the call: the process is dead, which is what a signal asks for.
      if (!connectionLost(err) || (await this.lossWithin(lossAttributionMs)) === undefined) throw err;
    }
  }

  wait(): Promise<ProcessExit> {
    return this.exit;
  }

  async closeStdin(): Promise<void> {
    // pumpInput sends what is buffered, then closes the process's stdin in the guest.
    this.stdin?.end();
  }

  async resizePty(width: number, height: number): Promise<void> {
    await this.proc?.resize(height, width);
  }

  /** The pod was lost: a process still running is killed, and its stderr (stdout with a terminal) says why. */
  lose(reason: string): void {
    if (this.settled) return;
    const out = this.stderr ?? this.stdout;
    if (!out.writableEnded) out.write(`kata-ts: ${reason}; the pod's VM was stopped and this process killed\n`);
    this.abandon();
  }

  /** The VM is going away: whatever has not exited is killed. */
  abandon(): void {
    this.stdout.end();
    this.stderr?.end();
    this.finish({ exitStatus: lostExit, exitedAt: new Date() });
  }

  private finish(exit: ProcessExit): void {
    if (this.settled) return;
    this.settled = true;
    this.resolveExit(exit);
  }
}

/** The agent call failed because the connection went (closed, or the VM died under it). */
function connectionLost(err: unknown): boolean {
  return isKataError(err, "UNAVAILABLE") || isKataError(err, "CANCELLED");
}

export function containerInit(container: SandboxContainer): () => Promise<SandboxProcess> {
  return () => container.start();
}

export function execLauncher(container: SandboxContainer, execId: string, process: OciProcess, opts: { terminal: boolean; stdin: boolean }): () => Promise<SandboxProcess> {
  return () => container.exec(execId, process, { terminal: opts.terminal, openStdin: opts.stdin });
}

/**
 * The CRI sandbox (pause) task: the VM itself. It "exits" when killed or when the VM ends. A VM
 * that ended before the task's Start (an adopted VM whose deferred set-up failed at once) fails
 * that Start with the pod's loss, which containerd reports as RunPodSandbox's error.
 */
export class PauseProcess implements PodProcess {
  private resolveExit!: (exit: ProcessExit) => void;
  private readonly exit = new Promise<ProcessExit>((r) => (this.resolveExit = r));
  private started = false;
  private vmGone = false;

  constructor(
    readonly pid: number,
    vmEnded: Promise<unknown>,
    private readonly podLost: PodLoss = new Promise(() => undefined),
  ) {
    const ended = (): void => {
      this.vmGone = true;
      if (this.started) this.resolveExit({ exitStatus: lostExit, exitedAt: new Date() });
    };
    void vmEnded.then(ended, ended);
  }

  async start(): Promise<void> {
    if (this.vmGone) {
      const loss = await Promise.race([this.podLost, sleep(lossAttributionMs, undefined, { ref: false })]);
      this.resolveExit({ exitStatus: lostExit, exitedAt: new Date() });
      throw new KataError("UNAVAILABLE", `the pod's VM ended before its sandbox task started${loss === undefined ? "" : `: ${loss.message}`}`);
    }
    this.started = true;
  }

  /** Started by another process (a reattached pod): from here its exit is the VM's end (137 at once if it has ended). */
  startedElsewhere(): void {
    this.started = true;
    if (this.vmGone) this.resolveExit({ exitStatus: lostExit, exitedAt: new Date() });
  }

  async signal(signal: number): Promise<void> {
    // The VM stops when the sandbox task is deleted; to containerd the pause process is gone now.
    this.resolveExit({ exitStatus: 128 + signal, exitedAt: new Date() });
  }

  wait(): Promise<ProcessExit> {
    return this.exit;
  }

  async closeStdin(): Promise<void> {}

  async resizePty(): Promise<void> {}
}
