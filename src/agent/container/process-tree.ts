// A process and its descendants from /proc: what each is doing (for an error message when crun
// is stuck) and a SIGKILL for all of them (what the agent started must not outlive a failed start;
// crun's child, the future container process, is not yet in the container's cgroup then).
import { readdir, readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";

export interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
  /** R, S, D (uninterruptible: blocked in the kernel, even SIGKILL waits), Z, T... */
  state: string;
  /** The kernel function it sleeps in ("0" or "" when running or unknown). */
  wchan: string;
}

async function readProc(procRoot: string, pid: number): Promise<ProcInfo | undefined> {
  const stat = await readFile(`${procRoot}/${pid}/stat`, "utf8").catch(() => undefined);
  if (stat === undefined) return undefined;
  // comm may hold spaces and parentheses: it ends at the last ")".
  const close = stat.lastIndexOf(")");
  const comm = stat.slice(stat.indexOf("(") + 1, close);
  const [state = "?", ppid = "0"] = stat.slice(close + 2).split(" ");
  const wchan = await readFile(`${procRoot}/${pid}/wchan`, "utf8").catch(() => "");
  return { pid, ppid: Number(ppid), comm, state, wchan: wchan.trim() };
}

/** `root` and every descendant of it, parents before children; empty when `root` is gone. */
export async function processTree(root: number, procRoot = "/proc"): Promise<ProcInfo[]> {
  const names = await readdir(procRoot).catch(() => [] as string[]);
  const all = new Map<number, ProcInfo>();
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const info = await readProc(procRoot, Number(name));
    if (info !== undefined) all.set(info.pid, info);
  }
  const top = all.get(root);
  if (top === undefined) return [];
  const tree = [top];
  for (let i = 0; i < tree.length; i++) {
    for (const p of all.values()) if (p.ppid === tree[i]!.pid && p.pid !== root) tree.push(p);
  }
  return tree;
}

export function describeTree(tree: ProcInfo[]): string {
  if (tree.length === 0) return "no process left";
  return tree.map((p) => `${p.comm} (pid ${p.pid}) state ${p.state}${p.wchan !== "" && p.wchan !== "0" ? ` in ${p.wchan}` : ""}`).join(", ");
}

/**
 * SIGKILLs the processes of `tree` (from processTree), then waits up to `waitMs` for them to go;
 * answers the ones still there (blocked in the kernel: a process in state D dies only once its
 * system call returns).
 */
export async function killTree(tree: ProcInfo[], waitMs: number, procRoot = "/proc"): Promise<ProcInfo[]> {
  for (const p of tree) {
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + waitMs;
  let left = tree;
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(100);
    const still: ProcInfo[] = [];
    for (const p of left) {
      const now = await readProc(procRoot, p.pid);
      // Gone, or a zombie (dead, only waiting for its parent to reap it).
      if (now !== undefined && now.state !== "Z") still.push(now);
    }
    left = still;
  }
  return left;
}
