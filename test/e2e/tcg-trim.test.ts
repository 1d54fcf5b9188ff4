// An idle kata-ts pod gives its VM's TCG translation cache back to the host, through the whole
// stack: a private containerd with the kata-ts handler, a pod left idle past [hypervisor.qemu]
// tcg_idle_trim_s (its own ConfigPath: 5 s), and ExecSync still answering right afterwards.
// Teardown proves nothing is left. (An adopted pooled VM is trimmed the same way: AdoptedVm, the
// same trimmer; the pool is off here to keep the test to one VM.)
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { connectCri, type CriClient } from "../../src/cri/client.js";
import { ContainerState, podSandboxConfig, waitForContainerState } from "../../src/cri/pod.js";
import { assertNoLeaks, startContainerd, type PrivateContainerd } from "../harness/containerd.js";
import { BUSYBOX_IMAGE_REF, importTestImages } from "../harness/images.js";
import { HANDLER } from "./kata-pod-flow.js";

const kataConfig = "[hypervisor.qemu]\ntcg_idle_trim_s = 5\n";
let ctd: PrivateContainerd | undefined;
let cri: CriClient | undefined;

before(async () => {
  ctd = await startContainerd({ kataConfig });
  await importTestImages(ctd);
  cri = connectCri(ctd.address);
});

after(async () => {
  cri?.close();
  await ctd?.stop();
  if (ctd) await assertNoLeaks(ctd);
});

/** PSS (MiB) of QEMU's code-buffer memfd: what the host holds of its translation cache. */
async function jitPssMiB(pid: number): Promise<number> {
  let inJit = false;
  let kib = 0;
  for (const line of (await readFile(`/proc/${pid}/smaps`, "utf8")).split("\n")) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inJit = line.endsWith("/memfd:tcg-jit (deleted)");
    else if (inJit && line.startsWith("Pss:")) kib += Number(line.split(/\s+/)[1]);
  }
  return kib / 1024;
}

void test("kata-ts pod: idle, its VM's translation cache is given back; ExecSync still works", { timeout: 900_000 }, async () => {
  assert.ok(ctd && cri);
  const name = "trimpod";
  const logDirectory = join(ctd.baseDir, "pods", `default_${name}_uid-${name}`);
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name, uid: `uid-${name}`, logDirectory });
  const { podSandboxId } = await cri.runtime.runPodSandbox({ config, runtimeHandler: HANDLER });
  try {
    const { containerId } = await cri.runtime.createContainer({
      podSandboxId,
      config: { metadata: { name: "sleeper", attempt: 0 }, image: { image: BUSYBOX_IMAGE_REF }, command: ["sleep", "100000"], logPath: "sleeper.log" },
      sandboxConfig: config,
    });
    await cri.runtime.startContainer({ containerId });
    await waitForContainerState(cri, containerId, ContainerState.CONTAINER_RUNNING, { timeoutMs: 60_000 });
    const hello = await cri.runtime.execSync({ containerId, cmd: ["echo", "before"], timeout: 60n });
    assert.equal(Buffer.from(hello.stdout).toString(), "before\n");

    const record = JSON.parse(await readFile(join(ctd.baseDir, "kata-ts", podSandboxId, "state.json"), "utf8")) as { vmPid?: number };
    const pid = record.vmPid;
    assert.ok(pid !== undefined, "the sandbox records its QEMU");
    assert.ok((await readFile(`/proc/${pid}/cmdline`, "utf8")).includes("split-wx=on"), "the pod's QEMU runs with split-wx");
    const full = await jitPssMiB(pid);
    assert.ok(full > 20, `the pod's cache is full after its start: ${full.toFixed(1)} MiB`);
    let now = full;
    for (let i = 0; i < 180 && now > full / 4; i++) {
      await sleep(500);
      now = await jitPssMiB(pid);
    }
    assert.ok(now <= full / 4, `the idle pod's cache was given back: ${full.toFixed(1)} -> ${now.toFixed(1)} MiB`);

    for (let i = 0; i < 3; i++) {
      const r: Awaited<ReturnType<CriClient["runtime"]["execSync"]>> = await cri.runtime.execSync({ containerId, cmd: ["sh", "-c", `echo after-${i}; cat /proc/sys/kernel/random/boot_id >/dev/null`], timeout: 60n });
      assert.equal(r.exitCode, 0, Buffer.from(r.stderr).toString());
      assert.equal(Buffer.from(r.stdout).toString(), `after-${i}\n`);
    }
    await cri.runtime.stopContainer({ containerId, timeout: 0n });
    await cri.runtime.removeContainer({ containerId });
  } finally {
    await cri.runtime.stopPodSandbox({ podSandboxId });
    await cri.runtime.removePodSandbox({ podSandboxId });
  }
});
