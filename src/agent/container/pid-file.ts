// Waiting for the pid file crun writes once the container process exists. The agent learns the
// pid no other way (crun runs in the foreground and is the agent's child, the container process
// is crun's). inotify on the file's directory wakes the agent when crun writes it; a slow poll is
// the fallback for a missed event or a kernel without inotify. The guest has one vCPU: polling
// every few milliseconds, as this did at first, keeps node (timer, thread-pool read, wake-up)
// competing with the crun it waits for.
import { watch, type FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";

export type PidWait = { kind: "pid"; pid: number } | { kind: "stopped" } | { kind: "timed-out" };

export interface PidWaitOptions {
  /** Settles when the writer can no longer write it (crun exited or never started). */
  stopped: Promise<unknown>;
  timeoutMs: number;
  /** Fallback poll period. */
  pollMs?: number;
}

export async function readPid(file: string): Promise<number | undefined> {
  const text = await readFile(file, "utf8").catch(() => "");
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Resolves with the pid once `file` holds one; or "stopped" (checked once more first) or "timed-out". */
export function waitForPidFile(file: string, opts: PidWaitOptions): Promise<PidWait> {
  return new Promise((resolve) => {
    let settled = false;
    let reading = false;
    let readAgain = false;
    let watcher: FSWatcher | undefined;
    const finish = (result: PidWait): void => {
      if (settled) return;
      settled = true;
      watcher?.close();
      clearInterval(poll);
      clearTimeout(timer);
      resolve(result);
    };
    // One read at a time; an event during a read asks for one more (crun may have just written it).
    const check = async (): Promise<void> => {
      if (reading) {
        readAgain = true;
        return;
      }
      reading = true;
      do {
        readAgain = false;
        const pid = await readPid(file);
        if (pid !== undefined) finish({ kind: "pid", pid });
      } while (readAgain && !settled);
      reading = false;
    };
    try {
      watcher = watch(dirname(file), { persistent: false }, () => void check());
      watcher.on("error", () => undefined); // the poll still runs
    } catch {
      watcher = undefined; // no inotify here: the poll finds it
    }
    const poll = setInterval(() => void check(), opts.pollMs ?? 100);
    const timer = setTimeout(() => finish({ kind: "timed-out" }), opts.timeoutMs);
    void opts.stopped.then(async () => {
      // It may have run, written its pid and exited before the last event was handled.
      const pid = await readPid(file);
      finish(pid !== undefined ? { kind: "pid", pid } : { kind: "stopped" });
    });
    void check();
  });
}
