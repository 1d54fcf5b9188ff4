// Notices OOM kills: polls each watched container's memory.events and queues the container id
// whenever oom_kill grows. GetOOMEvent takes from the queue, waiting while it is empty.
// (Polling, not inotify: fs.watch on cgroup files is not reliable across kernels.)
import { KataError } from "../../util/errors.js";
import { readKeyed } from "./cgroup-stats.js";

export class OomWatcher {
  private readonly watched = new Map<string, { dir: string; kills: bigint }>();
  private readonly queue: string[] = [];
  private waiters: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly intervalMs = 200) {}

  watch(containerId: string, cgroupDir: string): void {
    this.watched.set(containerId, { dir: cgroupDir, kills: 0n });
    if (this.timer === undefined) {
      this.timer = setInterval(() => void this.poll(), this.intervalMs);
      this.timer.unref();
    }
  }

  /** Reads once more (a kill just before the container exited still counts), then forgets it. */
  async unwatch(containerId: string): Promise<void> {
    await this.pollOne(containerId);
    this.watched.delete(containerId);
    if (this.watched.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  async next(signal?: AbortSignal): Promise<string> {
    while (this.queue.length === 0) {
      await new Promise<void>((resolve, reject) => {
        if (signal?.aborted) return reject(new KataError("CANCELLED", "stopped waiting for OOM events"));
        const done = (): void => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
        const onAbort = (): void => {
          this.waiters = this.waiters.filter((w) => w !== done);
          reject(new KataError("CANCELLED", "stopped waiting for OOM events"));
        };
        this.waiters.push(done);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    }
    return this.queue.shift()!;
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.watched.clear();
  }

  private async poll(): Promise<void> {
    for (const id of [...this.watched.keys()]) await this.pollOne(id);
  }

  private async pollOne(id: string): Promise<void> {
    const w = this.watched.get(id);
    if (w === undefined) return;
    const kills = (await readKeyed(w.dir, "memory.events")).get("oom_kill") ?? 0n;
    if (kills > w.kills) {
      w.kills = kills;
      this.queue.push(id);
      const ws = this.waiters;
      this.waiters = [];
      for (const fn of ws) fn();
    }
  }
}
