// The pod life cycle kubelet drives over CRI, against the kata-ts handler: shared by the e2e test
// (real VMs) and the shim's CRI integration test (a host-process pod). Asserts what a user sees:
// pod ready, container output in the CRI log file, exit codes in ContainerStatus, ExecSync output
// and exit codes, stop with SIGKILL = 137, and that removing the pod leaves no mount or state.
import assert from "node:assert/strict";
import { mkdir, readdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { CriClient } from "../../src/cri/client.js";
import { ContainerState, PodSandboxState, podSandboxConfig, waitForContainerState } from "../../src/cri/pod.js";
import { installContainerdHandler } from "../../src/deploy/containerd-install.js";
import type { PrivateContainerd } from "../harness/containerd.js";
import { runEchoThenSleeper } from "../harness/echo-sleeper.js";
import { mountsUnder } from "../harness/mounts.js";
import { waitUntilEmpty } from "./pod-leftovers.js";

export const HANDLER = "kata-ts";
const repoRoot = join(import.meta.dirname, "..", "..", "..");
export const shimPath = join(repoRoot, "bin", "containerd-shim-kata-ts-v2");

/**
 * containerd's environment with the shim on PATH: containerd 1.6.20 (Debian) ignores the CRI
 * handler's runtime_path when it starts the sandbox task and looks the binary up by name.
 */
export function shimOnPath(): NodeJS.ProcessEnv {
  return { PATH: `${dirname(shimPath)}:${process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"}` };
}

/**
 * startContainerd's beforeStart: the node installer registers the handler, as on a real node.
 * (The harness now does this itself unless `kataTs: false`; kept for callers that install their own.)
 */
export function installHandler(kataConfigPath?: string): (configPath: string) => Promise<void> {
  return async (configPath) => {
    await installContainerdHandler({ containerdConfigPath: configPath, runtimePath: shimPath, kataConfigPath });
  };
}

export interface FlowResult {
  /** `uname -r` inside the pod. */
  podKernel: string;
  /** The CPUs a container in the pod sees (/proc/cpuinfo): the VM's vCPUs that came up (0 where the container has no /proc, e.g. the host-process test shim). */
  podCpus: number;
}

export async function runKataPodFlow(
  ctd: PrivateContainerd,
  cri: CriClient,
  name: string,
  /** Checks to run while the pod is up. */
  whilePodRuns?: (podSandboxId: string) => Promise<void>,
): Promise<FlowResult> {
  const logDirectory = join(ctd.baseDir, "pods", `default_${name}_uid-${name}`);
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name, uid: `uid-${name}`, logDirectory });
  const { podSandboxId } = await cri.runtime.runPodSandbox({ config, runtimeHandler: HANDLER });
  let removed = false;
  try {
    const pod = await cri.runtime.podSandboxStatus({ podSandboxId });
    assert.equal(pod.status?.state, PodSandboxState.SANDBOX_READY);
    assert.equal(pod.status?.runtimeHandler, HANDLER);
    await whilePodRuns?.(podSandboxId);

    const { echoId, sleeperId } = await runEchoThenSleeper(cri, { podSandboxId, config, logDirectory }, "kata-ts", 120_000);
    const uname = await cri.runtime.execSync({ containerId: sleeperId, cmd: ["sh", "-c", "uname -r; cat /proc/cpuinfo 2>/dev/null | grep -c ^processor; true"], timeout: 60n });
    assert.equal(uname.exitCode, 0, Buffer.from(uname.stderr).toString());
    const [podKernel = "", podCpus = ""] = Buffer.from(uname.stdout).toString().trim().split("\n");
    const failing = await cri.runtime.execSync({ containerId: sleeperId, cmd: ["sh", "-c", "echo oops >&2; exit 7"], timeout: 60n });
    assert.equal(failing.exitCode, 7);
    assert.equal(Buffer.from(failing.stderr).toString(), "oops\n");

    // Stats travel as cgroup v2 Metrics, which the CRI plugin decodes into working-set bytes.
    const stats = await cri.runtime.containerStats({ containerId: sleeperId });
    assert.ok((stats.stats?.memory?.workingSetBytes?.value ?? 0n) > 0n, "memory stats for a running container");

    await cri.runtime.stopContainer({ containerId: sleeperId, timeout: 0n });
    const stopped = await waitForContainerState(cri, sleeperId, ContainerState.CONTAINER_EXITED, { timeoutMs: 60_000 });
    assert.equal(stopped.exitCode, 137);
    for (const containerId of [echoId, sleeperId]) await cri.runtime.removeContainer({ containerId });
    await cri.runtime.stopPodSandbox({ podSandboxId });
    await cri.runtime.removePodSandbox({ podSandboxId });
    removed = true;
    assert.equal((await cri.runtime.listPodSandbox({})).items.length, 0);
    assert.deepEqual(await mountsUnder([ctd.baseDir]), [], "no rootfs, share or netns mount left");
    // Sandbox state lives in per-sandbox directories (the harness's installer may keep files here).
    // (the node-level shim server's keeper keeps its own until its idle exit).
    const stateDirs = async () => (await readdir(ctd.kataStateDir, { withFileTypes: true }).catch(() => [])).filter((e) => e.isDirectory()).map((e) => `kata-ts state ${e.name}`);
    await waitUntilEmpty("kata-ts sandbox state", stateDirs, 15_000);
    return { podKernel, podCpus: Number(podCpus) };
  } finally {
    if (!removed) {
      await cri.runtime.stopPodSandbox({ podSandboxId }).catch(() => undefined);
      await cri.runtime.removePodSandbox({ podSandboxId }).catch(() => undefined);
    }
  }
}
