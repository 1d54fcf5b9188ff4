// One demo pod over CRI: a busybox container that sleeps, and `uname -r` run in it with ExecSync,
// exactly what `kubectl exec pod -- uname -r` does through kubelet.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { CriClient } from "../cri/client.js";
import { ContainerState, podSandboxConfig, waitForContainerState } from "../cri/pod.js";
import { BUSYBOX_IMAGE_REF } from "../images/test-images.js";
import { KataError } from "../util/errors.js";

export interface DemoPod {
  name: string;
  handler: string;
  podSandboxId: string;
  containerId: string;
}

export async function startPod(cri: CriClient, baseDir: string, name: string, handler: string): Promise<DemoPod> {
  const logDirectory = join(baseDir, "pods", name);
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name, uid: `demo-${name}`, logDirectory });
  const { podSandboxId } = await cri.runtime.runPodSandbox({ config, runtimeHandler: handler }, { timeoutMs: 300_000 });
  const { containerId } = await cri.runtime.createContainer({
    podSandboxId,
    sandboxConfig: config,
    config: { metadata: { name: "main" }, image: { image: BUSYBOX_IMAGE_REF }, command: ["sleep", "3600"], logPath: "main.log" },
  });
  await cri.runtime.startContainer({ containerId });
  await waitForContainerState(cri, containerId, ContainerState.CONTAINER_RUNNING, { timeoutMs: 120_000 });
  return { name, handler, podSandboxId, containerId };
}

export async function podKernel(cri: CriClient, pod: DemoPod): Promise<string> {
  const r = await cri.runtime.execSync({ containerId: pod.containerId, cmd: ["uname", "-r"], timeout: 60n });
  if (r.exitCode !== 0) throw new KataError("INTERNAL", `uname -r in pod ${pod.name} exited ${r.exitCode}: ${Buffer.from(r.stderr).toString()}`);
  return Buffer.from(r.stdout).toString().trim();
}

export async function removePod(cri: CriClient, pod: DemoPod): Promise<void> {
  await cri.runtime.stopPodSandbox({ podSandboxId: pod.podSandboxId });
  await cri.runtime.removePodSandbox({ podSandboxId: pod.podSandboxId });
}
