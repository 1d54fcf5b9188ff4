// A kata-ts pod through CRI as kubelet makes one: its sandbox, one busybox container running
// `command`, started and RUNNING; its CRI log under <baseDir>/pods/<name>/.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { CriClient } from "../../src/cri/client.js";
import { ContainerState, podSandboxConfig, waitForContainerState } from "../../src/cri/pod.js";
import type { PrivateContainerd } from "../harness/containerd.js";
import { BUSYBOX_IMAGE_REF } from "../harness/images.js";

export interface OneContainerPod {
  name: string;
  podSandboxId: string;
  containerId: string;
  /** The container's CRI log file. */
  logFile: string;
}

export async function startOneContainerPod(ctd: PrivateContainerd, cri: CriClient, name: string, container: { name: string; command: string[] }): Promise<OneContainerPod> {
  const logDirectory = join(ctd.baseDir, "pods", name);
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name, uid: `uid-${name}`, logDirectory });
  const { podSandboxId } = await cri.runtime.runPodSandbox({ config, runtimeHandler: "kata-ts" });
  const logPath = `${container.name}.log`;
  const { containerId } = await cri.runtime.createContainer({
    podSandboxId,
    sandboxConfig: config,
    config: { metadata: { name: container.name }, image: { image: BUSYBOX_IMAGE_REF }, command: container.command, logPath },
  });
  await cri.runtime.startContainer({ containerId });
  await waitForContainerState(cri, containerId, ContainerState.CONTAINER_RUNNING, { timeoutMs: 300_000, pollMs: 100 });
  return { name, podSandboxId, containerId, logFile: join(logDirectory, logPath) };
}
