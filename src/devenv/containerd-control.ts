// Two steps every private containerd (the demo's, the tests' harness) needs: wait until it
// answers, and remove its pods through CRI before it is stopped (so shims tear their VMs down).
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { connectCri } from "../cri/client.js";
import { KataError } from "../util/errors.js";
import { tryRun } from "../util/exec.js";

export async function waitContainerdReady(address: string, hasExited: () => boolean, logPath: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (hasExited()) {
      const log = await readFile(logPath, "utf8").catch(() => "");
      throw new KataError("UNAVAILABLE", `containerd exited during start-up; last log lines:\n${log.split("\n").slice(-15).join("\n")}`);
    }
    if ((await tryRun("ctr", ["--address", address, "version"], { timeoutMs: 5_000 })) !== undefined) return;
    if (Date.now() > deadline) throw new KataError("DEADLINE_EXCEEDED", `containerd did not answer on ${address} within ${timeoutMs} ms; see ${logPath}`);
    await sleep(100);
  }
}

/** Best effort: when CRI does not answer, the caller's process and mount sweep still runs. */
export async function removeAllPods(address: string): Promise<void> {
  const cri = connectCri(address);
  try {
    const { items } = await cri.runtime.listPodSandbox({}, { timeoutMs: 15_000 });
    for (const pod of items) {
      await cri.runtime.stopPodSandbox({ podSandboxId: pod.id }, { timeoutMs: 60_000 }).catch(() => undefined);
      await cri.runtime.removePodSandbox({ podSandboxId: pod.id }, { timeoutMs: 60_000 }).catch(() => undefined);
    }
  } catch {
    // CRI not answering
  } finally {
    cri.close();
  }
}
