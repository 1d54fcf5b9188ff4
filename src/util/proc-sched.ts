// What the host scheduler says about a process: the CPU time it used, and the time its threads
// waited runnable for a CPU. Used to tell a starved VM (slow: the host is crowded) from a stuck one.
import { readdir, readFile } from "node:fs/promises";

/** CPU seconds (user + system) a process has used, or undefined when it is gone. */
export async function processCpuSeconds(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  const text = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? ticks / 100 : undefined; // USER_HZ is 100 on Linux
}

/**
 * Seconds the process's busiest-waiting thread has spent runnable but not running (schedstat's
 * run_delay), or undefined when unreadable. The max over threads, not the sum: a vCPU thread
 * waiting is what delays the guest, and threads wait at the same time.
 */
export async function runQueueWaitSeconds(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => undefined);
  if (tasks === undefined) return undefined;
  let max: number | undefined;
  for (const tid of tasks) {
    const text = await readFile(`/proc/${pid}/task/${tid}/schedstat`, "utf8").catch(() => undefined);
    const delayNs = Number(text?.split(" ")[1]);
    if (Number.isFinite(delayNs)) max = Math.max(max ?? 0, delayNs / 1e9);
  }
  return max;
}

/**
 * CPU time (ms) all of a process's threads have used, from each thread's schedstat (ns): finer than
 * /proc/PID/stat's 10 ms ticks, for the CPU of one short step (an exec). 0 when the process is gone.
 */
export async function processThreadsCpuMs(pid: number): Promise<number> {
  let ns = 0;
  for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
    ns += Number((await readFile(`/proc/${pid}/task/${tid}/schedstat`, "utf8").catch(() => "0")).split(" ")[0]) || 0;
  }
  return ns / 1e6;
}
