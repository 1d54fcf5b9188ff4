// A privileged container can build container networking inside its pod: a bridge (brctl addbr,
// what Docker-in-pod and CNI plugins do) and packet-filter rules with iptables, both the legacy
// (ip_tables) and the nf_tables flavour, including a NAT rule. runc is the reference; under
// kata-ts the same commands run against the guest kernel, which must carry bridge, netfilter,
// nf_tables, xtables matches and NAT (src/guest/kernel/config/common/net*.conf).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { connectCri, type CriClient } from "../../src/cri/client.js";
import { ContainerState, podSandboxConfig, readCriLog, waitForContainerState } from "../../src/cri/pod.js";
import { assertNoLeaks, startContainerd, type PrivateContainerd } from "../harness/containerd.js";
import { BUSYBOX_IMAGE_REF, importTestImages } from "../harness/images.js";
import { HANDLER } from "./kata-pod-flow.js";

let ctd: PrivateContainerd | undefined;
let cri: CriClient | undefined;

before(async () => {
  ctd = await startContainerd({});
  await importTestImages(ctd);
  cri = connectCri(ctd.address);
});

after(async () => {
  cri?.close();
  await ctd?.stop();
  if (ctd) await assertNoLeaks(ctd);
});

// Each step echoes a marker only when it succeeded; the script stops at the first failure, whose
// error message (e.g. "Package not installed" for a missing bridge driver) lands in the log.
const script = [
  "brctl addbr ktsbr0 && ip link set ktsbr0 up && echo step:bridge",
  // No ports yet, so no carrier; the UP flag says the bridge device itself is up.
  "ip -o link show ktsbr0 | grep -q 'MULTICAST,UP' && echo step:bridge-up",
  "iptables-legacy -A INPUT -i ktsbr0 -p tcp --dport 8080 -j ACCEPT && echo step:legacy-filter",
  "iptables-legacy -S INPUT | grep -q -- '--dport 8080' && echo step:legacy-listed",
  "iptables-nft -t nat -A POSTROUTING -s 10.99.0.0/24 ! -o ktsbr0 -j MASQUERADE && echo step:nft-nat",
  "iptables-nft -t nat -S POSTROUTING | grep -q MASQUERADE && echo step:nft-listed",
  "iptables-nft -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT && echo step:conntrack",
].map((line) => `${line} || exit 1`).join("\n");
const steps = ["bridge", "bridge-up", "legacy-filter", "legacy-listed", "nft-nat", "nft-listed", "conntrack"];

async function runPrivileged(handler: string, name: string): Promise<{ exitCode: number; log: string }> {
  assert.ok(ctd && cri);
  const logDirectory = join(ctd.baseDir, "pods", `default_${name}_uid-${name}`);
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name, uid: `uid-${name}`, logDirectory, privileged: true });
  const { podSandboxId } = await cri.runtime.runPodSandbox({ config, runtimeHandler: handler });
  try {
    const { containerId } = await cri.runtime.createContainer({
      podSandboxId,
      sandboxConfig: config,
      config: {
        metadata: { name: "netadmin" },
        image: { image: BUSYBOX_IMAGE_REF },
        command: ["/bin/sh", "-c", `${script} 2>&1`],
        logPath: "netadmin/0.log",
        linux: { securityContext: { privileged: true } },
      },
    });
    await cri.runtime.startContainer({ containerId });
    const status = await waitForContainerState(cri, containerId, ContainerState.CONTAINER_EXITED, { timeoutMs: 180_000 });
    const log = await readCriLog(logDirectory, "netadmin/0.log");
    await cri.runtime.removeContainer({ containerId });
    return { exitCode: status.exitCode, log };
  } finally {
    await cri.runtime.stopPodSandbox({ podSandboxId });
    await cri.runtime.removePodSandbox({ podSandboxId });
  }
}

for (const [handler, label] of [["runc", "runc (reference)"], [HANDLER, "kata-ts"]] as const) {
  void test(`${label}: a privileged container creates a bridge and iptables rules (legacy filter, nf_tables NAT, conntrack match)`, { timeout: 600_000 }, async () => {
    const { exitCode, log } = await runPrivileged(handler, `netfilter-${handler}`);
    for (const step of steps) assert.ok(log.includes(`step:${step}`), `step ${step} did not succeed; container log:\n${log}`);
    assert.equal(exitCode, 0, log);
  });
}
