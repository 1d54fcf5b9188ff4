// A container in a sandbox, from the host: created -> running -> stopped -> deleted. Its rootfs
// and volumes sit on the share (host-spec.ts); the agent runs it with crun in the guest.
import { KataError } from "../util/errors.js";
import type { OciProcess } from "../protocol/contract/oci.js";
import type { AgentClient } from "./agent-client.js";
import { Lifecycle } from "./lifecycle.js";
import { SandboxProcess } from "./process.js";
import type { UndoStack } from "./undo-stack.js";

export type ContainerState = "created" | "running" | "stopped" | "deleted";

const TABLE: Record<ContainerState, readonly ContainerState[]> = {
  created: ["running", "stopped", "deleted"],
  running: ["stopped", "deleted"],
  stopped: ["deleted"],
  deleted: [],
};

export interface ExecOptions {
  terminal?: boolean;
  openStdin?: boolean;
}

export interface ContainerHooks {
  onDeleted(id: string): void;
  /** Its init process runs (the sandbox records it for a process that takes the pod over). */
  onStarted?(id: string, pid: number): Promise<void>;
}

export class SandboxContainer {
  private readonly life: Lifecycle<ContainerState>;
  private initProc: SandboxProcess | undefined;
  private readonly execs = new Map<string, SandboxProcess>();

  constructor(
    private readonly agent: AgentClient,
    readonly id: string,
    readonly terminal: boolean,
    /** Undoes the host-side share of this container (binds, copied files). */
    private readonly undo: UndoStack,
    private readonly hooks: ContainerHooks,
  ) {
    this.life = new Lifecycle(`container ${id}`, "created", TABLE);
  }

  /**
   * A container of a pod taken over from another process (Sandbox.reattach): created or running
   * (its init, with guest pid `initPid`, is polled again on this process's agent connection).
   */
  static reattach(agent: AgentClient, id: string, terminal: boolean, undo: UndoStack, hooks: ContainerHooks, running: { initPid: number } | undefined): SandboxContainer {
    const c = new SandboxContainer(agent, id, terminal, undo, hooks);
    if (running !== undefined) c.running(running.initPid);
    return c;
  }

  /**
   * A process of this running container that another process started (a pod taken over): its init
   * ("") or an exec. Nothing is asked of the guest here: an exec id it does not know fails the
   * process's first wait or read (NOT_FOUND).
   */
  reattachProcess(execId: string, terminal: boolean): SandboxProcess {
    if (execId === "" || execId === this.id) {
      if (this.initProc === undefined) throw new KataError("FAILED_PRECONDITION", `container ${this.id} has not been started: there is no process to reattach`);
      return this.initProc;
    }
    this.life.require("reattach a process of", "running", "stopped");
    let p = this.execs.get(execId);
    if (p === undefined) {
      // The guest pid of an exec is not recorded on the host (0: unknown); nothing host-side uses it.
      p = new SandboxProcess(this.agent, this.id, execId, 0, terminal);
      this.execs.set(execId, p);
    }
    return p;
  }

  get state(): ContainerState {
    return this.life.state;
  }

  /** The init process (after start). */
  get init(): SandboxProcess {
    if (this.initProc === undefined) throw new KataError("FAILED_PRECONDITION", `container ${this.id} has not been started`);
    return this.initProc;
  }

  async start(): Promise<SandboxProcess> {
    this.life.require("start", "created");
    const pid = await this.agent.startContainer(this.id);
    const init = this.running(pid);
    await this.hooks.onStarted?.(this.id, pid);
    return init;
  }

  private running(pid: number): SandboxProcess {
    this.life.move("running", "start");
    this.initProc = new SandboxProcess(this.agent, this.id, "", pid, this.terminal);
    void this.initProc.wait().then(
      () => {
        if (this.life.is("running")) this.life.move("stopped", "stop");
      },
      () => undefined,
    );
    return this.initProc;
  }

  async exec(execId: string, process: OciProcess, opts: ExecOptions = {}): Promise<SandboxProcess> {
    this.life.require("exec into", "running");
    const terminal = opts.terminal ?? false;
    const pid = await this.agent.exec({ containerId: this.id, execId, process: { ...process, terminal }, terminal, openStdin: opts.openStdin ?? false });
    const p = new SandboxProcess(this.agent, this.id, execId, pid, terminal);
    this.execs.set(execId, p);
    return p;
  }

  /** Kills what still runs, removes the container in the guest and its share on the host. */
  async delete(): Promise<void> {
    if (this.life.is("deleted")) return;
    try {
      await this.agent.removeContainer(this.id, true);
    } finally {
      this.life.move("deleted", "delete");
      this.hooks.onDeleted(this.id);
      await this.undo.unwind();
    }
  }
}
