// A small explicit state machine for the host-side sandbox, container and process lifecycles:
// the legal transitions are a table, and an illegal one is a typed FAILED_PRECONDITION.
import { KataError } from "../util/errors.js";

export class Lifecycle<S extends string> {
  private current: S;

  constructor(
    private readonly what: string,
    initial: S,
    private readonly table: Readonly<Record<S, readonly S[]>>,
  ) {
    this.current = initial;
  }

  get state(): S {
    return this.current;
  }

  is(...states: S[]): boolean {
    return states.includes(this.current);
  }

  /** Throws unless the current state is one of `states`. */
  require(operation: string, ...states: S[]): void {
    if (!states.includes(this.current)) {
      throw new KataError("FAILED_PRECONDITION", `cannot ${operation} ${this.what}: it is ${this.current}`);
    }
  }

  move(to: S, operation: string): void {
    if (!this.table[this.current].includes(to)) {
      throw new KataError("FAILED_PRECONDITION", `cannot ${operation} ${this.what}: it is ${this.current}`);
    }
    this.current = to;
  }
}
