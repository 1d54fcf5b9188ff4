// The lifecycle of one container process as an explicit state machine. Each operation names the
// states it is legal in; anything else is a typed KataError, never a silently ignored call.
import { KataError } from "../../util/errors.js";

export type ProcessState = "created" | "running" | "exited";

export type ProcessOp = "start" | "signal" | "writeStdin" | "closeStdin" | "resize";

const LEGAL: Record<ProcessOp, readonly ProcessState[]> = {
  start: ["created"],
  signal: ["created", "running"],
  writeStdin: ["created", "running"],
  closeStdin: ["created", "running", "exited"],
  resize: ["running"],
};

const NEXT: Partial<Record<ProcessState, readonly ProcessState[]>> = {
  created: ["running", "exited"],
  running: ["exited"],
};

export function checkOp(what: string, state: ProcessState, op: ProcessOp): void {
  if (LEGAL[op].includes(state)) return;
  // containerd treats NOT_FOUND on a gone process as success for Kill; keep that code for "exited".
  const code = state === "exited" && op === "signal" ? "NOT_FOUND" : "FAILED_PRECONDITION";
  throw new KataError(code, `cannot ${op} ${what}: it is ${state}`);
}

export function checkTransition(what: string, from: ProcessState, to: ProcessState): void {
  if (NEXT[from]?.includes(to)) return;
  throw new KataError("FAILED_PRECONDITION", `${what} cannot go from ${from} to ${to}`);
}
