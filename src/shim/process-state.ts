// A task process's lifecycle as explicit states (like the runc shim's): each operation is legal
// in some states only, and an illegal one is a typed error that containerd sees with the right
// code. "Already gone" is NOT_FOUND because the CRI plugin ignores exactly that code on Kill and
// Delete; other illegal moves are FAILED_PRECONDITION.
import { KataError } from "../util/errors.js";

export type ProcessStatus = "creating" | "created" | "running" | "paused" | "stopped" | "deleted";
export type ProcessOp = "start" | "kill" | "exit" | "delete" | "io" | "pause" | "resume";

const legal: Record<ProcessOp, readonly ProcessStatus[]> = {
  start: ["created"],
  kill: ["created", "running", "paused"],
  // A process can exit before Start returned (it ran quickly) or be killed while created.
  exit: ["creating", "created", "running", "paused"],
  delete: ["created", "stopped"],
  io: ["created", "running", "paused"],
  pause: ["running"],
  resume: ["paused"],
};

const next: Partial<Record<ProcessOp, ProcessStatus>> = {
  start: "running",
  exit: "stopped",
  delete: "deleted",
  pause: "paused",
  resume: "running",
};

export class ProcessState {
  private current: ProcessStatus = "creating";

  constructor(private readonly what: string) {}

  get status(): ProcessStatus {
    return this.current;
  }

  /** Creation finished. */
  created(): void {
    if (this.current === "creating") this.current = "created";
  }

  /** The state a process was recorded in by a server that died (TaskService.restore). */
  restore(status: ProcessStatus): void {
    this.current = status === "creating" ? "created" : status;
  }

  /** Throws the typed error for `op` in the current state; moves to the next state if it has one. */
  apply(op: ProcessOp): void {
    this.check(op);
    const to = next[op];
    if (to !== undefined) this.current = to;
  }

  check(op: ProcessOp): void {
    if (legal[op].includes(this.current)) return;
    if (this.current === "deleted" || (op === "kill" && this.current === "stopped")) {
      throw new KataError("NOT_FOUND", `${this.what}: cannot ${op}: process already ${this.current === "deleted" ? "deleted" : "finished"}`);
    }
    throw new KataError("FAILED_PRECONDITION", `${this.what}: cannot ${op} a process in ${this.current} state`);
  }
}
