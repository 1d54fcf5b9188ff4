// PodProcess implementations over the sandbox layer. A container's init and an exec are both
// started by Start (containerd's Create/Exec only prepare them), so the agent is asked to run them
// then. Output flows agent -> PassThrough -> FifoIo; stdin the other way. A process whose VM or
// agent connection is lost counts as killed (137): Wait must always answer.
import { PassThrough } from "node:stream";
import type { SandboxContainer } from "../sandbox/container.js";
import type { SandboxProcess } from "../sandbox/process.js";
import type { OciProcess } from "../agent/oci/types.js";
import type { Logger } from "../util/log.js";
import { describeError } from "../util/errors.js";
import type { PodProcess, ProcessExit } from "./pod-port.js";

const lostExit = 137;

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
  ) {
    this.stdin = opts.stdin ? new PassThrough() : undefined;
    this.stderr = opts.terminal ? undefined : new PassThrough();
  }

  async start(): Promise<void> {
    const proc = await this.launch();
    this.proc = proc;
    this.pump(proc.pumpOutput("stdout", this.stdout), this.stdout, "stdout");
    if (this.stderr !== undefined) this.pump(proc.pumpOutput("stderr", this.stderr), this.stderr, "stderr");
    if (this.stdin !== undefined) {
      proc.pumpInput(this.stdin).catch((err: unknown) => this.log.warn({ err: describeError(err) }, "stdin pump failed"));
    }
    proc.wait().then(
      (s) => this.finish({ exitStatus: s.status, exitedAt: s.exitedAt }),
      (err: unknown) => {
        this.log.warn({ err: describeError(err) }, "lost the process's exit (VM or agent gone)");
        this.finish({ exitStatus: lostExit, exitedAt: new Date() });
      },
    );
  }

  private pump(done: Promise<number>, out: PassThrough, which: string): void {
    done.then(
      () => out.end(),
      (err: unknown) => {
        this.log.debug({ err: describeError(err), which }, "output pump ended");
        out.end();
      },
    );
  }

  async signal(signal: number): Promise<void> {
    if (this.proc === undefined) {
      // Killed before it ever ran: it exits with that signal and never starts.
      this.stdout.end();
      this.stderr?.end();
      this.finish({ exitStatus: 128 + signal, exitedAt: new Date() });
      return;
    }
    await this.proc.signal(signal);
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

export function containerInit(container: SandboxContainer): () => Promise<SandboxProcess> {
  return () => container.start();
}

export function execLauncher(container: SandboxContainer, execId: string, process: OciProcess, opts: { terminal: boolean; stdin: boolean }): () => Promise<SandboxProcess> {
  return () => container.exec(execId, process, { terminal: opts.terminal, openStdin: opts.stdin });
}

/** The CRI sandbox (pause) task: the VM itself. It "exits" when killed or when the VM ends. */
export class PauseProcess implements PodProcess {
  private resolveExit!: (exit: ProcessExit) => void;
  private readonly exit = new Promise<ProcessExit>((r) => (this.resolveExit = r));

  constructor(
    readonly pid: number,
    vmEnded: Promise<unknown>,
  ) {
    void vmEnded.then(
      () => this.resolveExit({ exitStatus: lostExit, exitedAt: new Date() }),
      () => this.resolveExit({ exitStatus: lostExit, exitedAt: new Date() }),
    );
  }

  async start(): Promise<void> {}

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
