// Benches that start pods on a private containerd remove them when they are interrupted (Ctrl-C,
// or SIGTERM from a CI timeout): without this, an interrupted density run left tens of VMs, their
// shims and mounts running on a shared machine. Every pod id a bench creates is recorded here;
// on SIGINT/SIGTERM each is stopped and removed through CRI, then the containerd harness is
// stopped (which sweeps anything started but not yet recorded), then the process exits with
// 128+signal. A second signal during the clean-up is ignored (exiting then would leak).
import type { CriClient } from "../../src/cri/client.js";
import type { PrivateContainerd } from "../../test/harness/containerd.js";

const signalNumbers: Record<string, number> = { SIGINT: 2, SIGTERM: 15 };
/** Pods stopped and removed at once (kubelet, too, tears pods down in parallel). */
const REMOVE_AT_ONCE = 4;

export class PodsCleanup {
  private readonly ids = new Set<string>();
  private readonly after: (() => Promise<void>)[] = [];
  private cleaning: Promise<void> | undefined;
  private readonly onSignal = (sig: NodeJS.Signals): void => {
    if (this.cleaning !== undefined) {
      console.error(`${sig}: still removing the pods this bench started`);
      return;
    }
    console.error(`${sig}: removing the ${this.ids.size} pod(s) this bench started, then its containerd`);
    void this.removeAll()
      .then(() => this.ctd.stop())
      .catch((err: unknown) => console.error("clean-up after the signal failed:", err))
      .finally(() => process.exit(128 + (signalNumbers[sig] ?? 1)));
  };

  constructor(
    private readonly ctd: PrivateContainerd,
    private readonly cri: CriClient,
  ) {
    process.on("SIGINT", this.onSignal);
    process.on("SIGTERM", this.onSignal);
  }

  /** A pod this bench created (call as soon as RunPodSandbox answers). */
  add(podSandboxId: string): void {
    this.ids.add(podSandboxId);
  }

  /**
   * Stops and removes `ids` (default: every recorded pod), ignoring pods already gone, REMOVE_AT_ONCE
   * at a time (one at a time, 100 idle pods took ~12 min to remove on a loaded 2-core host).
   */
  async remove(ids: readonly string[] = [...this.ids]): Promise<void> {
    const queue = [...ids];
    const worker = async (): Promise<void> => {
      for (let podSandboxId = queue.shift(); podSandboxId !== undefined; podSandboxId = queue.shift()) {
        await this.cri.runtime.stopPodSandbox({ podSandboxId }, { timeoutMs: 120_000 }).catch(() => undefined);
        await this.cri.runtime.removePodSandbox({ podSandboxId }, { timeoutMs: 120_000 }).catch(() => undefined);
        this.ids.delete(podSandboxId);
      }
    };
    await Promise.all(Array.from({ length: REMOVE_AT_ONCE }, worker));
  }

  /** Runs `fn` once every recorded pod is removed (what the pods ran in: their pod cgroups, the pool). */
  afterRemove(fn: () => Promise<void>): void {
    this.after.push(fn);
  }

  /** Removes every recorded pod, then runs the afterRemove steps, once, whoever asks first (the signal handler or the bench's own finally). */
  removeAll(): Promise<void> {
    this.cleaning ??= this.remove().then(async () => {
      for (const fn of this.after) await fn().catch((err: unknown) => console.error("clean-up step failed:", err));
    });
    return this.cleaning;
  }

  /** Back to the default signal behaviour (the bench's own clean-up is done). */
  dispose(): void {
    process.off("SIGINT", this.onSignal);
    process.off("SIGTERM", this.onSignal);
  }
}
