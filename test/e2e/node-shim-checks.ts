// What the node-level shim server's e2e tests look at: its processes, and pods whose container
// ticks into its CRI log, so that a test sees their output go on across the server's restarts.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { CriClient } from "../../src/cri/client.js";
import { ContainerState } from "../../src/cri/pod.js";
import type { PrivateContainerd } from "../harness/containerd.js";
import { processesMentioning } from "../harness/processes.js";
import { startOneContainerPod, type OneContainerPod } from "./one-container-pod.js";

export type TickPod = OneContainerPod;

export const startTickPod = (ctd: PrivateContainerd, cri: CriClient, name: string): Promise<TickPod> =>
  startOneContainerPod(ctd, cri, name, { name: "ticker", command: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.5; done"] });

/** The highest tick in the pod's CRI log. */
async function lastTick(pod: TickPod): Promise<number> {
  const text = await readFile(pod.logFile, "utf8").catch(() => "");
  const ticks = [...text.matchAll(/tick (\d+)/g)].map((m) => Number(m[1]));
  return ticks.length === 0 ? -1 : Math.max(...ticks);
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
}

/** The keeper's and the server's pids (the only shim processes of this containerd), and per-pod servers (none expected). */
export async function shimProcesses(ctd: PrivateContainerd): Promise<{ keeper: number[]; server: number[]; perPod: number[] }> {
  const procs = await processesMentioning(ctd.baseDir);
  const args = (p: { cmdline: string[] }): string => p.cmdline.join(" ");
  return {
    keeper: procs.filter((p) => args(p).includes("node-keeper")).map((p) => p.pid),
    server: procs.filter((p) => args(p).includes("node-server")).map((p) => p.pid),
    perPod: procs.filter((p) => / serve$/.test(args(p))).map((p) => p.pid),
  };
}

/** Every pod still runs and answers from its own guest; its container's output reaches the log again. */
export async function assertPodsLive(cri: CriClient, pods: readonly TickPod[], when: string): Promise<void> {
  for (const pod of pods) {
    const before = await lastTick(pod);
    const r = await cri.runtime.execSync({ containerId: pod.containerId, cmd: ["hostname"], timeout: 120n });
    assert.equal(r.exitCode, 0, `${when}: ${pod.name}: exec failed: ${Buffer.from(r.stderr).toString()}`);
    assert.equal(Buffer.from(r.stdout).toString().trim(), pod.name, `${when}: the exec ran in that pod's guest`);
    await waitFor(`${pod.name}'s output to reach its log ${when}`, async () => ((await lastTick(pod)) > before ? true : undefined), 60_000);
    const status = await cri.runtime.containerStatus({ containerId: pod.containerId });
    assert.equal(status.status?.state, ContainerState.CONTAINER_RUNNING, `${when}: ${pod.name}'s container still runs (containerd saw no exit)`);
  }
}
