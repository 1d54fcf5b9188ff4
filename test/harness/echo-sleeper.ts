// The two containers the runc and kata-ts pod flows (test/e2e/runc-pod.test.ts,
// test/e2e/kata-pod-flow.ts) start in a ready pod: `echo`, which prints on both streams and exits
// with a chosen code (checked in ContainerStatus and the CRI log file), then `sleeper`, a
// long-running container to exec into, stop and take stats of.
import assert from "node:assert/strict";
import type { CriClient } from "../../src/cri/client.js";
import { ContainerState, readCriLog, waitForContainerState, type PodSandboxConfigInit } from "../../src/cri/pod.js";
import { BUSYBOX_IMAGE_REF } from "./images.js";

export interface ReadyPod {
  podSandboxId: string;
  config: PodSandboxConfigInit;
  logDirectory: string;
}

/**
 * Runs `echo` ("hello from <greeting>" on stdout, "to stderr" on stderr, exit 3) to EXITED and
 * asserts what kubelet would show of it; then starts `sleeper` (sleep 3600) and waits for RUNNING.
 * `timeoutMs` bounds each wait.
 */
export async function runEchoThenSleeper(
  cri: CriClient,
  pod: ReadyPod,
  greeting: string,
  timeoutMs: number,
): Promise<{ echoId: string; sleeperId: string }> {
  const { podSandboxId, config, logDirectory } = pod;
  const { containerId: echoId } = await cri.runtime.createContainer({
    podSandboxId,
    sandboxConfig: config,
    config: {
      metadata: { name: "echo" },
      image: { image: BUSYBOX_IMAGE_REF },
      command: ["/bin/sh", "-c", `echo hello from ${greeting}; echo to stderr >&2; exit 3`],
      logPath: "echo/0.log",
    },
  });
  await cri.runtime.startContainer({ containerId: echoId });
  const exited = await waitForContainerState(cri, echoId, ContainerState.CONTAINER_EXITED, { timeoutMs });
  assert.equal(exited.exitCode, 3);
  assert.equal(await readCriLog(logDirectory, "echo/0.log", "stdout"), `hello from ${greeting}\n`);
  assert.equal(await readCriLog(logDirectory, "echo/0.log", "stderr"), "to stderr\n");

  const { containerId: sleeperId } = await cri.runtime.createContainer({
    podSandboxId,
    sandboxConfig: config,
    config: { metadata: { name: "sleeper" }, image: { image: BUSYBOX_IMAGE_REF }, command: ["sleep", "3600"], logPath: "sleeper/0.log" },
  });
  await cri.runtime.startContainer({ containerId: sleeperId });
  await waitForContainerState(cri, sleeperId, ContainerState.CONTAINER_RUNNING, { timeoutMs });
  return { echoId, sleeperId };
}
