// The VM lifecycle as an explicit state machine: every transition is declared here, and an
// illegal one (start twice, start after stop) is a typed FAILED_PRECONDITION error rather than a
// silently ignored call.
import { KataError } from "../util/errors.js";
import type { VmState } from "./types.js";

const allowed: Record<VmState, readonly VmState[]> = {
  created: ["starting", "stopped"],
  starting: ["running", "stopping", "stopped"],
  running: ["stopping", "stopped"],
  stopping: ["stopped"],
  stopped: [],
};

export class VmLifecycle {
  private current: VmState = "created";

  constructor(private readonly vmId: string) {}

  get state(): VmState {
    return this.current;
  }

  canMove(to: VmState): boolean {
    return allowed[this.current].includes(to);
  }

  /** Move to `to`, or throw FAILED_PRECONDITION naming the operation that was refused. */
  move(to: VmState, operation: string): void {
    if (!this.canMove(to)) throw this.refusal(operation);
    this.current = to;
  }

  /** The FAILED_PRECONDITION error for `operation` in the current state. */
  refusal(operation: string): KataError {
    return new KataError(
      "FAILED_PRECONDITION",
      `cannot ${operation} VM ${this.vmId} in state ${this.current}` +
        (this.current === "stopped" ? " (a stopped VM cannot be restarted; create a new one)" : ""),
    );
  }
}
