// Teardown in reverse order of set-up, on every path: each set-up step pushes its undo as soon as
// it succeeds, so a failure half-way undoes exactly what was done. Every undo runs even when an
// earlier one fails; the failures are reported together.
import { KataError } from "../util/errors.js";

export class UndoStack {
  private steps: { what: string; fn: () => Promise<void> }[] = [];

  push(what: string, fn: () => Promise<void>): void {
    this.steps.push({ what, fn });
  }

  get size(): number {
    return this.steps.length;
  }

  async unwind(): Promise<void> {
    const failed: string[] = [];
    let first: unknown;
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        await step.fn();
      } catch (err) {
        failed.push(step.what);
        first ??= err;
      }
    }
    if (failed.length > 0) {
      // The first failure's own words travel with the list: containerd logs only the message.
      const why = first instanceof Error ? first.message : String(first);
      throw new KataError("INTERNAL", `teardown failed for: ${failed.join(", ")} (first: ${why})`, { cause: first });
    }
  }
}
