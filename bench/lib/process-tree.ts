// Host processes of a private containerd's pods, found by ancestry: every process that mentions
// the harness's dir (shims carry it in their command line or environment) and all their
// descendants (runc containers under a runc shim; QEMU and virtiofsd under a kata-ts shim).
// containerd itself is left out: it is the node's, not a pod's. Figures only, no asserts.
import { readdir, readFile } from "node:fs/promises";
import { processesMentioning } from "../../test/harness/processes.js";

/** ppid of every live process, from /proc/<pid>/stat. */
async function parentMap(): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, "utf8").catch(() => "");
    if (stat === "") continue;
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    out.set(Number(name), Number(fields[1]));
  }
  return out;
}

/** `roots` and every live descendant of them. */
export async function withDescendants(roots: readonly number[]): Promise<number[]> {
  const parents = await parentMap();
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of parents) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  const seen = new Set<number>();
  const stack = roots.filter((p) => parents.has(p));
  while (stack.length > 0) {
    const pid = stack.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return [...seen];
}

/** The pod-side processes of the harness under `baseDir`: shims and what they run. */
export async function podSideProcesses(baseDir: string): Promise<number[]> {
  const mentioning = await processesMentioning(baseDir);
  const roots = mentioning.filter((p) => !/(^|\/)containerd$/.test(p.cmdline[0] ?? "")).map((p) => p.pid);
  return withDescendants(roots);
}
