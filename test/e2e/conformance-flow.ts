// What the CRI validation suite (critest) checks of a pod, as small steps the conformance tests run
// on both handlers (runc is the reference): each answers what a user of the pod sees.
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { CriClient } from "../../src/cri/client.js";
import { ContainerState, podSandboxConfig, waitForContainerState, type PodSandboxConfigInit, type PodSpecInput } from "../../src/cri/pod.js";
import type { PrivateContainerd } from "../harness/containerd.js";
import { BUSYBOX_IMAGE_REF } from "../harness/images.js";

export type Handler = "runc" | "kata-ts";
export const HANDLERS: readonly Handler[] = ["runc", "kata-ts"];

/** CRI NamespaceMode (runtime/v1 api.proto). */
export const NamespaceMode = { POD: 0, CONTAINER: 1, NODE: 2 } as const;

export interface TestPod {
  podSandboxId: string;
  /** Namespace modes; kubelet gives each container the pod's (containerd reads the container's). */
  pid: number;
  ipc: number;
  config: PodSandboxConfigInit;
  logDirectory: string;
}

export interface PodOptions {
  pid?: number;
  ipc?: number;
  sysctls?: Record<string, string>;
}

/** The PodSandboxConfig kubelet would send for these options. */
export async function podConfig(ctd: PrivateContainerd, name: string, handler: Handler, o: PodOptions = {}): Promise<{ config: PodSandboxConfigInit; logDirectory: string }> {
  const input: PodSpecInput = { name: `${name}-${handler}`, uid: `uid-${name}-${handler}`, logDirectory: "" };
  input.logDirectory = join(ctd.baseDir, "pods", `default_${input.name}_${input.uid ?? ""}`);
  await mkdir(input.logDirectory, { recursive: true });
  const config = podSandboxConfig(input);
  config.linux = {
    cgroupParent: "",
    sysctls: o.sysctls ?? {},
    securityContext: { namespaceOptions: { pid: o.pid ?? NamespaceMode.CONTAINER, ipc: o.ipc ?? NamespaceMode.POD } },
  };
  return { config, logDirectory: input.logDirectory };
}

export async function runPod(cri: CriClient, ctd: PrivateContainerd, name: string, handler: Handler, o: PodOptions = {}): Promise<TestPod> {
  const { config, logDirectory } = await podConfig(ctd, name, handler, o);
  const { podSandboxId } = await cri.runtime.runPodSandbox({ config, runtimeHandler: handler });
  return { podSandboxId, config, logDirectory, pid: o.pid ?? NamespaceMode.CONTAINER, ipc: o.ipc ?? NamespaceMode.POD };
}

export async function removePod(cri: CriClient, pod: TestPod): Promise<void> {
  await cri.runtime.stopPodSandbox({ podSandboxId: pod.podSandboxId });
  await cri.runtime.removePodSandbox({ podSandboxId: pod.podSandboxId });
}

export async function createContainer(cri: CriClient, pod: TestPod, name: string, command: string[], extra: Record<string, unknown> = {}): Promise<string> {
  const { containerId } = await cri.runtime.createContainer({
    podSandboxId: pod.podSandboxId,
    sandboxConfig: pod.config,
    config: {
      metadata: { name },
      image: { image: BUSYBOX_IMAGE_REF },
      command,
      logPath: `${name}/0.log`,
      linux: { securityContext: { namespaceOptions: { pid: pod.pid, ipc: pod.ipc } } },
      ...extra,
    },
  });
  return containerId;
}

/** Creates and starts a container and waits until CRI reports it running. */
export async function runContainer(cri: CriClient, pod: TestPod, name: string, command: string[], extra: Record<string, unknown> = {}): Promise<string> {
  const id = await createContainer(cri, pod, name, command, extra);
  await cri.runtime.startContainer({ containerId: id });
  await waitForContainerState(cri, id, ContainerState.CONTAINER_RUNNING, { timeoutMs: 120_000 });
  return id;
}

/** ExecSync's stdout; a non-zero exit fails with its stderr. */
export async function execOut(cri: CriClient, containerId: string, cmd: string[]): Promise<string> {
  const r = await cri.runtime.execSync({ containerId, cmd, timeout: 60n });
  assert.equal(r.exitCode, 0, `${cmd.join(" ")} in ${containerId}: ${Buffer.from(r.stderr).toString()}`);
  return Buffer.from(r.stdout).toString();
}

export async function stopAndRemove(cri: CriClient, ids: string[]): Promise<void> {
  for (const containerId of ids) {
    await cri.runtime.stopContainer({ containerId, timeout: 0n });
    await cri.runtime.removeContainer({ containerId });
  }
}

/** The error text of a rejected CRI call. */
export async function criError(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as Error).message;
  }
  assert.fail("the CRI call succeeded; it should have been refused");
}
