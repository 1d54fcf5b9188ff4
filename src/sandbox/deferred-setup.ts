// A deferred guest set-up (docs/pool.md "Deferred adoption"): an adopted VM's sandbox is reported
// created once the VM is the pod's on the host (taken, attached, agent connected), while the
// pod network's host side and the guest's calls (CreateSandbox, UpdateNetwork) still run. This
// keeps what the Sandbox needs for it: the deadline on that work, its outcome for container
// creation, and a settle-only view the teardown awaits (the host side pushes undo steps until it
// settles).
import { KataError } from "../util/errors.js";

export class DeferredSetUp {
  /** Resolves when the set-up is done; rejects with its error, or DEADLINE_EXCEEDED when it ran out of time. */
  readonly done: Promise<void>;
  /** Settles (never rejects) once the work itself ended: the teardown unwinds only after it. */
  readonly settled: Promise<void>;

  constructor(
    work: Promise<void>,
    deadlineMs: number,
    /** Called once when the work failed or its deadline passed (the sandbox is then lost). */
    onFailure: (err: unknown) => void,
  ) {
    this.settled = work.then(
      () => undefined,
      () => undefined,
    );
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new KataError("DEADLINE_EXCEEDED", `the guest did not finish its set-up for the pod within ${deadlineMs / 1000} s`)), deadlineMs);
      timer.unref();
    });
    this.done = Promise.race([work, deadline]).then(
      () => clearTimeout(timer),
      (err: unknown) => {
        clearTimeout(timer);
        onFailure(err);
        throw err;
      },
    );
    this.done.catch(() => undefined); // awaited by container creation; reported through onFailure
  }
}
