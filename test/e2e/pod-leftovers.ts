// What a kata-ts pod may leave on the host, for e2e tests that remove pods while the harness's
// containerd still runs: processes (shim, QEMU, virtiofsd), mounts under the harness's dirs (the
// share, overlays, the pod netns bind mount), kata-ts state dirs, virtiofsd pid files and, given a
// cgroup parent, the pod's host cgroups.
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { cgroupHierarchies } from "../../src/sandbox/host-cgroup.js";
import type { PrivateContainerd } from "../harness/containerd.js";
import { virtiofsdPidFiles } from "../harness/leaks.js";
import { mountsUnder } from "../harness/mounts.js";
import { processesMentioning } from "../harness/processes.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll `probe` until it returns an empty list; fails with the last list after `timeoutMs`. */
export async function waitUntilEmpty(what: string, probe: () => Promise<string[]>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = await probe();
    if (left.length === 0) return;
    if (Date.now() > deadline) assert.fail(`${what} still there after ${timeoutMs} ms:\n  ${left.join("\n  ")}`);
    await sleep(250);
  }
}

/** Cgroup directories below `parent` (a cgroupfs path, kubelet's pod cgroup) in every mounted hierarchy. */
async function cgroupsUnder(parent: string): Promise<string[]> {
  const out: string[] = [];
  for (const h of await cgroupHierarchies()) {
    const dir = join(h.mount, parent);
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) if (e.isDirectory()) out.push(join(dir, e.name));
  }
  return out;
}

/** Everything a pod may leave behind, while containerd still runs (its own process aside). */
export async function podLeftovers(ctd: PrivateContainerd, opts: { cgroupParent?: string } = {}): Promise<string[]> {
  const out: string[] = [];
  for (const p of await processesMentioning(ctd.baseDir)) if (p.pid !== ctd.pid) out.push(`process ${p.pid}: ${p.cmdline.join(" ")}`);
  for (const m of await mountsUnder([ctd.baseDir])) out.push(`mount ${m}`);
  for (const e of await readdir(ctd.kataStateDir, { withFileTypes: true }).catch(() => [])) {
    if (e.isDirectory()) out.push(`kata-ts state ${join(ctd.kataStateDir, e.name)}`);
  }
  for (const f of await virtiofsdPidFiles(ctd.baseDir)) out.push(`virtiofsd pid file ${f}`);
  if (opts.cgroupParent !== undefined) for (const c of await cgroupsUnder(opts.cgroupParent)) out.push(`cgroup ${c}`);
  return out;
}
