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
    private readonly onDeleted: (id: string) => void,
  ) {
    this.life = new Lifecycle(`container ${id}`, "created", TABLE);
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
      this.onDeleted(this.id);
      await this.undo.unwind();
    }
  }
}
