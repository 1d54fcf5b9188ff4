// Notices OOM kills: watches each container's memory.events and queues the container id whenever
// oom_kill grows. GetOOMEvent takes from the queue, waiting while it is empty.
// The kernel notifies inotify watchers of memory.events when it changes (kernfs_notify), so an
// idle guest has nothing to wake up for; a 200 ms poll instead cost every idle pod a guest wakeup
// five times a second (docs/guest.md "Idle CPU"). When a watch cannot be set that container is
// polled, and each poll tries the watch again: the usual reason is that memory.events does not
// exist yet (the agent watches a container's cgroup before crun runs, and the memory controller
// appears in that cgroup only once crun has enabled it in the parent's subtree_control), so the
// first poll after crun started moves the container to a watch and the poll timer stops. Without
// this, every pod's first container was polled for the pod's lifetime (measured: the agent's
// main thread woke ~5 times a second, ~60 guest context switches a second, docs/density.md).
// A kernel without inotify, or out of watches, keeps polling.
import { watch, type FSWatcher } from "node:fs";
import { join } from "node:path";
import { KataError } from "../../util/errors.js";
import { readKeyed } from "./cgroup-stats.js";

interface Watched {
  dir: string;
  kills: bigint;
  watcher?: FSWatcher;
  /** Reads in flight are chained, so two change events never race on `kills`. */
  reading: Promise<void>;
}

export type WatchFn = (path: string, onChange: () => void) => FSWatcher;

const inotifyWatch: WatchFn = (path, onChange) => watch(path, { persistent: false }, onChange);

export class OomWatcher {
  private readonly watched = new Map<string, Watched>();
  private readonly queue: string[] = [];
  private waiters: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pollIntervalMs = 200,
    private readonly watchFile: WatchFn = inotifyWatch,
  ) {}

  /** How many containers are polled because their memory.events could not be watched. */
  get polled(): number {
    return [...this.watched.values()].filter((w) => w.watcher === undefined).length;
  }

  watch(containerId: string, cgroupDir: string): void {
    const w: Watched = { dir: cgroupDir, kills: 0n, reading: Promise.resolve() };
    this.watched.set(containerId, w);
    if (!this.trySetWatch(containerId, w)) this.fallBackToPolling(containerId);
    void this.check(containerId); // a kill before the watch was set still counts
  }

  /** Sets the inotify watch on the container's memory.events; false when it cannot be set now. */
  private trySetWatch(containerId: string, w: Watched): boolean {
    try {
      const watcher = this.watchFile(join(w.dir, "memory.events"), () => void this.check(containerId));
      w.watcher = watcher;
      watcher.on("error", () => {
        if (w.watcher === watcher) this.fallBackToPolling(containerId);
      });
      return true;
    } catch {
      return false;
    }
  }

  /** Reads once more (a kill just before the container exited still counts), then forgets it. */
  async unwatch(containerId: string): Promise<void> {
    await this.check(containerId);
    const w = this.watched.get(containerId);
    w?.watcher?.close();
    this.watched.delete(containerId);
    this.stopPollingIfIdle();
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
    for (const w of this.watched.values()) w.watcher?.close();
    this.watched.clear();
  }

  private fallBackToPolling(containerId: string): void {
    const w = this.watched.get(containerId);
    if (w === undefined) return;
    w.watcher?.close();
    delete w.watcher;
    if (this.timer === undefined) {
      this.timer = setInterval(() => {
        for (const [id, x] of this.watched) {
          if (x.watcher !== undefined) continue;
          // Watched from now on; the read below still counts a kill that came before the watch.
          this.trySetWatch(id, x);
          void this.check(id);
        }
        this.stopPollingIfIdle();
      }, this.pollIntervalMs);
      this.timer.unref();
    }
  }

  private stopPollingIfIdle(): void {
    if (this.polled === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private check(id: string): Promise<void> {
    const w = this.watched.get(id);
    if (w === undefined) return Promise.resolve();
    w.reading = w.reading.then(async () => {
      const kills = (await readKeyed(w.dir, "memory.events")).get("oom_kill") ?? 0n;
      if (kills > w.kills) {
        w.kills = kills;
        this.queue.push(id);
        const ws = this.waiters;
        this.waiters = [];
        for (const fn of ws) fn();
      }
    });
    return w.reading;
  }
}
