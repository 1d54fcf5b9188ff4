// The host processes of a kata-ts pod (its shim server, QEMU and virtiofsd) and their PSS, as
// /proc/<pid>/smaps_rollup reports it. Shared by bench/overhead.ts (PSS + CPU, for the
// RuntimeClass overhead) and bench/pod-start.ts (PSS of one idle pod). Figures only, no asserts.
import { readFile, readlink } from "node:fs/promises";
import { isNodeShimCmdline, isShimServerCmdline } from "../../src/shim/bundle-path.js";
import { processesMentioning, type ProcInfo } from "../../test/harness/processes.js";

/** "node-shim": the node-level server's keeper and server, which serve every pod (a share per pod in density.ts). */
export type PodRole = "shim" | "node-shim" | "qemu" | "virtiofsd";

export interface PodProcess {
  pid: number;
  role: PodRole;
}

/** Which part of a pod a process is, or undefined for anything else (containerd, runc shims...). */
export function podRole(p: ProcInfo): PodRole | undefined {
  if (p.cmdline.some((a) => a.includes("qemu-system"))) return "qemu";
  if (p.cmdline.some((a) => a.endsWith("virtiofsd"))) return "virtiofsd";
  if (isShimServerCmdline(p.cmdline)) return "shim";
  if (isNodeShimCmdline(p.cmdline)) return "node-shim";
  return undefined;
}

/**
 * The pod processes of the harness under `baseDir`; with `podId`, only those whose command line
 * names that pod (without, every pod's: callers that run one pod at a time).
 */
export async function podProcesses(baseDir: string, podId?: string): Promise<PodProcess[]> {
  const out: PodProcess[] = [];
  for (const p of await processesMentioning(baseDir)) {
    const role = podRole(p);
    if (role === undefined) continue;
    // A shim server's cwd is its pod's bundle (.../<pod id>); a warm one the pool daemon keeps and
    // has not handed a pod yet runs in / and names no pod (docs/shim.md "Warm servers").
    const cwd = role === "shim" ? await readlink(`/proc/${p.pid}/cwd`).catch(() => "") : "";
    if (role === "shim" && p.cmdline.includes("warm") && cwd === "/") continue;
    if (podId !== undefined && !p.cmdline.some((a) => a.includes(podId)) && !cwd.endsWith(`/${podId}`)) continue;
    out.push({ pid: p.pid, role });
  }
  return out;
}

/** PSS of one process in KiB; 0 if it is gone (or the kernel has no smaps_rollup). */
export async function pssKiB(pid: number): Promise<number> {
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, "utf8").catch(() => "");
  return Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0);
}

/** PSS in KiB by role of the pod processes under `baseDir` (of pod `podId` if given). */
export async function podPss(baseDir: string, podId?: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const { pid, role } of await podProcesses(baseDir, podId)) out[role] = (out[role] ?? 0) + (await pssKiB(pid));
  return out;
}
