// Pod networking end to end: a private containerd (in its own netns, with the bridge CNI plugin
// and host-local IPAM) runs two kata-ts pods and one runc pod, each serving a page with busybox
// httpd. What a user sees: the IP CRI reports is the guest's eth0 address, the pods answer from
// the harness netns and from each other across runtimes, the pod's DNS settings reach the guest,
// and a hostNetwork pod is refused with a clear error. Pods are shared by the tests (TCG is slow).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { access, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectCri, type CriClient } from "../../src/cri/client.js";
import { LinuxPodSandboxConfigSchema, NamespaceMode, PodSandboxConfigSchema } from "../../src/cri/gen/runtime/v1/api_pb.js";
import { podSandboxConfig } from "../../src/cri/pod.js";
import { HOST_NETWORK_REFUSED } from "../../src/sandbox/network/pod-spec.js";
import { run } from "../../src/util/exec.js";
import { assertNoLeaks, startContainerd, type PrivateContainerd } from "../harness/containerd.js";
import { importTestImages } from "../harness/images.js";
import { HANDLER, installHandler, shimOnPath } from "./kata-pod-flow.js";
import { makeCniProbe, type CniProbe } from "./network-cni-probe.js";
import { httpBody, httpGetScript, inHarnessNetns, podNetnsPath, startWebPod, type WebPod } from "./network-pods.js";

const DNS = { servers: ["10.96.0.10"], searches: ["team-a.svc.cluster.local"], options: ["ndots:5"] };

let ctd: PrivateContainerd | undefined;
let cri: CriClient | undefined;
let probe: CniProbe | undefined;
let probeDir: string | undefined;
const pods: WebPod[] = [];
let kataA: WebPod, kataB: WebPod, runcC: WebPod;

before(async () => {
  probeDir = await mkdtemp(join(tmpdir(), "ktsn-"));
  probe = await makeCniProbe(probeDir, "10.244.77.0/24");
  ctd = await startContainerd({ beforeStart: installHandler(), env: shimOnPath(), cniConfDir: probe.confDir, cniBinDir: probe.binDir });
  await importTestImages(ctd);
  cri = connectCri(ctd.address);
  kataA = await startWebPod(ctd, cri, { name: "net-a", handler: HANDLER, dns: DNS });
  pods.push(kataA);
  kataB = await startWebPod(ctd, cri, { name: "net-b", handler: HANDLER });
  pods.push(kataB);
  runcC = await startWebPod(ctd, cri, { name: "net-c", handler: "runc" });
  pods.push(runcC);
});

after(async () => {
  for (const p of pods) await p.remove().catch(() => undefined);
  cri?.close();
  await ctd?.stop();
  await probe?.cleanup();
  if (probeDir) await rm(probeDir, { recursive: true, force: true });
  if (ctd) await assertNoLeaks(ctd);
});

/** GET / from inside a pod (busybox nc, with a deadline of its own); answers the body. */
async function fetchFrom(pod: WebPod, ip: string): Promise<string> {
  const r = await pod.exec(["sh", "-c", httpGetScript(ip)]);
  assert.equal(r.exitCode, 0, `GET from ${pod.name} to ${ip}: ${r.stderr}`);
  return httpBody(r.stdout);
}

void test("the pod IP CRI reports is the guest's eth0 address, with the veth's MAC and a default route", { timeout: 120_000 }, async () => {
  assert.ok(cri);
  for (const pod of [kataA, kataB]) {
    const addr = await pod.exec(["ip", "-o", "-4", "addr", "show", "dev", "eth0"]);
    assert.equal(addr.exitCode, 0, addr.stderr);
    assert.match(addr.stdout, new RegExp(`inet ${pod.ip.replaceAll(".", "\\.")}/24 `), `${pod.name}: ${addr.stdout}`);
    const guestMac = /link\/ether ([0-9a-f:]{17})/.exec((await pod.exec(["ip", "link", "show", "dev", "eth0"])).stdout)?.[1];
    const veth = JSON.parse((await run("nsenter", [`--net=${await podNetnsPath(cri, pod.podSandboxId)}`, "--", "ip", "-j", "link", "show", "dev", "eth0"])).stdout) as { address: string }[];
    assert.equal(guestMac, veth[0]?.address, "the guest NIC carries the veth's MAC");
    const route = await pod.exec(["ip", "route"]);
    assert.match(route.stdout, /^default via 10\.244\.77\.1 dev eth0/m, route.stdout);
    // The guest kernel is not the host's: the address really lives in the VM.
    const kernel = await pod.exec(["uname", "-r"]);
    assert.notEqual(kernel.stdout.trim(), (await run("uname", ["-r"])).stdout.trim());
  }
  assert.notEqual(kataA.ip, kataB.ip);
});

void test("a server in a kata-ts pod answers at the pod IP from the harness netns", { timeout: 120_000 }, async () => {
  assert.ok(ctd);
  for (const pod of [kataA, kataB]) {
    const page = await inHarnessNetns(ctd, "busybox", ["sh", "-c", httpGetScript(pod.ip)]);
    assert.equal(httpBody(page.stdout), `${pod.name}\n`);
  }
});

void test("two kata-ts pods reach each other", { timeout: 120_000 }, async () => {
  assert.equal(await fetchFrom(kataA, kataB.ip), "net-b\n");
  assert.equal(await fetchFrom(kataB, kataA.ip), "net-a\n");
});

void test("a kata-ts pod and a runc pod reach each other", { timeout: 120_000 }, async () => {
  assert.equal(await fetchFrom(kataA, runcC.ip), "net-c\n");
  assert.equal(await fetchFrom(runcC, kataA.ip), "net-a\n");
});

void test("the pod's DNS config reaches the guest's resolv.conf", { timeout: 60_000 }, async () => {
  const r = await kataA.exec(["cat", "/etc/resolv.conf"]);
  assert.equal(r.exitCode, 0, r.stderr);
  const lines = r.stdout.split("\n").map((l) => l.trim());
  assert.ok(lines.includes("nameserver 10.96.0.10"), r.stdout);
  assert.ok(lines.includes("search team-a.svc.cluster.local"), r.stdout);
  assert.ok(lines.includes("options ndots:5"), r.stdout);
});

void test("the pod netns holds one tap mirrored with the veth by tc while the pod runs", { timeout: 60_000 }, async () => {
  assert.ok(cri);
  const netns = await podNetnsPath(cri, kataB.podSandboxId);
  const links = JSON.parse((await run("nsenter", [`--net=${netns}`, "--", "ip", "-j", "link", "show"])).stdout) as { ifname: string }[];
  assert.deepEqual(links.map((l) => l.ifname).sort(), ["eth0", "lo", "tap0_kata"]);
  for (const dev of ["eth0", "tap0_kata"]) {
    const filters = (await run("nsenter", [`--net=${netns}`, "--", "tc", "filter", "show", "dev", dev, "ingress"])).stdout;
    const other = dev === "eth0" ? "tap0_kata" : "eth0";
    assert.match(filters, new RegExp(`mirred \\(Egress Redirect to device ${other}\\)`), filters);
  }
});

void test("a hostNetwork pod is refused: a VM cannot share the node's network namespace", { timeout: 120_000 }, async () => {
  assert.ok(ctd && cri);
  const config = create(PodSandboxConfigSchema, podSandboxConfig({ name: "net-host", uid: "uid-net-host", logDirectory: `${ctd.baseDir}/pods/net-host` }));
  config.linux = create(LinuxPodSandboxConfigSchema, { securityContext: { namespaceOptions: { network: NamespaceMode.NODE } } });
  const before = (await cri.runtime.listPodSandbox({})).items.length;
  await assert.rejects(cri.runtime.runPodSandbox({ config, runtimeHandler: HANDLER }), (err: Error) => {
    assert.ok(err.message.includes(HOST_NETWORK_REFUSED), err.message);
    return true;
  });
  assert.equal((await cri.runtime.listPodSandbox({})).items.length, before, "no sandbox left behind by the refused pod");
});

void test("CNI DEL finds the pod netns as CNI left it (no tap, no qdisc of ours); removal leaves no netns or VM", { timeout: 120_000 }, async () => {
  assert.ok(ctd && cri && probe);
  const netns = await podNetnsPath(cri, kataB.podSandboxId);
  await cri.runtime.stopPodSandbox({ podSandboxId: kataB.podSandboxId });
  const seen = (await probe.seenAtDel()).get(kataB.podSandboxId);
  assert.ok(seen, "the probe plugin ran at CNI DEL");
  assert.deepEqual([...seen.links].sort(), ["eth0", "lo"], "only CNI's own links at CNI DEL");
  assert.deepEqual(seen.qdiscs.filter((q) => q.endsWith(":ingress")), [], "no ingress qdisc of ours at CNI DEL");
  await assert.rejects(access(netns), "containerd removed the netns after CNI DEL");
  await kataB.remove();
  pods.splice(pods.indexOf(kataB), 1);
});
