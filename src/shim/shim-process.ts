// One task process as the shim tracks it (a container's init, or an exec): its lifecycle state,
// the sandbox layer's handle, its FIFO IO, and its exit once known. The exit is recorded only
// after its output reached the FIFOs, so Wait and /tasks/exit come after the last line of output.
import type { Logger } from "../util/log.js";
import { FifoIo, type FifoHolder } from "./fifo-io.js";
import type { PodProcess, ProcessExit, StdioPaths } from "./pod-port.js";
import { ProcessState, type ProcessStatus } from "./process-state.js";
import type { ProcessSnapshot } from "./task-service.js";

const outputDrainMs = 5000;

export class ShimProcess {
  readonly state: ProcessState;
  private handle: PodProcess | undefined;
  private io: FifoIo;
  private exit: ProcessExit | undefined;
  private starting: Promise<void> = Promise.resolve();
  private resolveExited!: (exit: ProcessExit) => void;
  /** Resolves when the process has exited and its output is flushed. */
  readonly exited: Promise<ProcessExit>;

  constructor(
    readonly containerId: string,
    /** "" for the container's init process. */
    readonly execId: string,
    readonly stdio: StdioPaths,
    private readonly log: Logger,
    fifoHolder?: FifoHolder,
  ) {
    this.state = new ProcessState(execId === "" ? `task ${containerId}` : `exec ${execId} in task ${containerId}`);
    this.io = new FifoIo(stdio, log, fifoHolder);
    this.exited = new Promise((resolve) => {
      this.resolveExited = resolve;
    });
  }

  get pid(): number {
    return this.handle?.pid ?? 0;
  }

  get status(): ProcessStatus {
    return this.state.status;
  }

  get exitInfo(): ProcessExit | undefined {
    return this.exit;
  }

  /**
   * Attach the created process; `onExit` runs once, after the exit is recorded. `beforeExit` runs
   * before the exit becomes visible (Wait, State, the exit event): what must reach containerd
   * ahead of the exit, such as an OOM kill, goes there.
   */
  async attach(handle: PodProcess, onExit: (exit: ProcessExit) => void, beforeExit?: (exit: ProcessExit) => Promise<void>): Promise<void> {
    this.handle = handle;
    await this.io.attach(handle);
    this.state.created();
    this.watchExit(handle, onExit, beforeExit);
  }

  /**
   * Takes over a process a server that died was tracking (TaskService.restore): its recorded
   * state, and, unless it had exited, the pod's handle on it, whose output goes to the FIFOs again
   * and whose exit is reported as attach() reports it. `handle` is undefined only for an exited one.
   */
  async restore(snap: ProcessSnapshot, handle: PodProcess | undefined, onExit: (exit: ProcessExit) => void, beforeExit?: (exit: ProcessExit) => Promise<void>): Promise<void> {
    this.state.restore(snap.status);
    if (snap.exit !== undefined) {
      // Its exit was reported by the server that recorded it.
      this.exit = { exitStatus: snap.exit.exitStatus, exitedAt: new Date(snap.exit.exitedAt) };
      this.resolveExited(this.exit);
      return;
    }
    if (handle === undefined) {
      // Nothing left of it to take over (the VM's record has no such process): it is gone, as a
      // process of a lost VM is (137), and containerd is told so.
      const exit = { exitStatus: 137, exitedAt: new Date() };
      this.exit = exit;
      if (this.state.status !== "stopped" && this.state.status !== "deleted") this.state.apply("exit");
      this.resolveExited(exit);
      onExit(exit);
      return;
    }
    this.handle = handle;
    await this.io.attach(handle);
    this.watchExit(handle, onExit, beforeExit);
  }

  private watchExit(handle: PodProcess, onExit: (exit: ProcessExit) => void, beforeExit?: (exit: ProcessExit) => Promise<void>): void {
    void handle.wait().then(async (exit) => {
      await this.io.drained(outputDrainMs);
      // A fast process can exit while Start is still answering: its exit follows its start event.
      await this.starting;
      if (this.state.status === "deleted") return; // deleted before it ran: already answered
      await beforeExit?.(exit).catch((err: unknown) => this.log.warn({ err, container: this.containerId }, "before-exit step failed"));
      this.exit = exit;
      this.state.apply("exit");
      this.log.info({ container: this.containerId, exec: this.execId, exitStatus: exit.exitStatus }, "process exited");
      this.resolveExited(exit);
      onExit(exit);
    });
  }

  /** Runs the process; `onStarted` (the start event) runs before any exit is reported. */
  async start(onStarted: () => void): Promise<void> {
    this.state.check("start");
    let done!: () => void;
    this.starting = new Promise((r) => (done = r));
    try {
      await this.live().start();
      if (this.state.status === "created") this.state.apply("start");
      onStarted();
    } finally {
      done();
    }
  }

  async signal(signal: number, all: boolean): Promise<void> {
    this.state.check("kill");
    await this.live().signal(signal, all);
  }

  async closeStdin(): Promise<void> {
    this.state.check("io");
    this.io.closeStdin();
    await this.live().closeStdin();
  }

  async resizePty(width: number, height: number): Promise<void> {
    this.state.check("io");
    await this.live().resizePty(width, height);
  }

  /** Mark deleted and release the FIFOs. The caller removes it from the sandbox layer. */
  async delete(): Promise<ProcessExit> {
    this.state.apply("delete");
    await this.io.close();
    // Deleted without ever exiting (created, never started): answer any Wait still pending.
    if (this.exit === undefined) {
      this.exit = { exitStatus: 0, exitedAt: new Date() };
      this.resolveExited(this.exit);
    }
    return this.exit;
  }

  private live(): PodProcess {
    if (this.handle === undefined) throw new Error(`process ${this.containerId}/${this.execId} has no handle`);
    return this.handle;
  }
}
