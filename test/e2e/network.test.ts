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
import { fileURLToPath } from "node:url";
import { connectCri, type CriClient } from "../../src/cri/client.js";
import { LinuxPodSandboxConfigSchema, NamespaceMode, PodSandboxConfigSchema } from "../../src/cri/gen/runtime/v1/api_pb.js";
import { podSandboxConfig } from "../../src/cri/pod.js";
import { HOST_NETWORK_REFUSED } from "../../src/sandbox/network/pod-spec.js";
import { run } from "../../src/util/exec.js";
import { assertNoLeaks, startContainerd, type PrivateContainerd } from "../harness/containerd.js";
import { importTestImages } from "../harness/images.js";
import { HANDLER, installHandler, shimOnPath } from "./kata-pod-flow.js";
import { makeCniProbe, type CniProbe } from "./network-cni-probe.js";
import { httpBody, httpGetScript, inHarnessNetns, podNetnsPath, startWebPod, WEB_PORT, type WebPod } from "./network-pods.js";

const PORT_FORWARD_CLIENT = fileURLToPath(new URL("../harness/port-forward-client.js", import.meta.url));

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

/** CRI PortForward, then the websocket stream as kubectl speaks it, from containerd's netns (where its stream server listens). */
async function portForward(pod: WebPod, port: number, input: string): Promise<{ data: string; error: string; exitCode: number }> {
  assert.ok(ctd && cri);
  const { url } = await cri.runtime.portForward({ podSandboxId: pod.podSandboxId, port: [port] });
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/portforward\//, url);
  const r = await run("nsenter", [`--net=${ctd.netnsPath}`, "--", process.execPath, PORT_FORWARD_CLIENT, url, String(port)], { input, allowNonZero: true, timeoutMs: 90_000 });
  return { data: r.stdout, error: r.stderr, exitCode: r.stderr === "" ? 0 : 1 };
}

void test("port-forward reaches the server in the VM as it reaches a runc pod's; a closed port is refused alike", { timeout: 240_000 }, async () => {
  for (const pod of [runcC, kataA]) {
    const page = await portForward(pod, WEB_PORT, "GET / HTTP/1.0\r\n\r\n");
    assert.equal(page.error, "", `${pod.handler}: ${page.error}`);
    assert.equal(httpBody(page.data), `${pod.name}\n`, pod.handler);
    const started = Date.now();
    const closed = await portForward(pod, 9, "");
    assert.match(closed.error, /error forwarding port 9 to pod .*failed to connect to localhost:9 .*connection refused/, `${pod.handler}: ${closed.error}`);
    // Refused at once, as with runc: not the 60 s timeout of a dial that goes nowhere.
    assert.ok(Date.now() - started < 30_000, `${pod.handler}: refusal took ${Date.now() - started} ms`);
  }
});

void test("the port-forward link is closed to the pod's network: a peer that knows the guest's MAC gets nothing", { timeout: 120_000 }, async () => {
  assert.ok(ctd && cri);
  const mac = /link\/ether ([0-9a-f:]{17})/.exec((await kataA.exec(["ip", "link", "show", "dev", "eth0"])).stdout)?.[1];
  assert.ok(mac);
  // The guest does hold the link address (port-forward lands there)...
  const addr = await kataA.exec(["ip", "-o", "-4", "addr", "show", "dev", "eth0"]);
  assert.match(addr.stdout, /inet 169\.254\.255\.2\/32 /, addr.stdout);
  // ...but from the bridge (the harness netns, a peer on the pod's L2), neither end answers, even
  // with the guest's MAC given (no ARP needed), while the pod IP does over the same path.
  const inHarness = (args: string[]) => run("nsenter", [`--net=${ctd?.netnsPath ?? ""}`, "--", "ip", ...args]);
  await inHarness(["route", "add", "169.254.255.0/30", "dev", "ktsh0"]);
  try {
    for (const to of ["169.254.255.2", "169.254.255.1"]) {
      await inHarness(["neigh", "replace", to, "lladdr", mac, "dev", "ktsh0", "nud", "permanent"]);
      const r: { stdout: string; stderr: string } = await inHarnessNetns(ctd, "busybox", ["sh", "-c", `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${to} ${WEB_PORT}`]).catch((err: Error) => ({ stdout: "", stderr: err.message }));
      assert.equal(r.stdout, "", `${to} answered a peer: ${r.stdout}`);
    }
    assert.equal(httpBody((await inHarnessNetns(ctd, "busybox", ["sh", "-c", httpGetScript(kataA.ip)])).stdout), "net-a\n");
  } finally {
    await inHarness(["route", "del", "169.254.255.0/30", "dev", "ktsh0"]);
    for (const to of ["169.254.255.2", "169.254.255.1"]) await inHarness(["neigh", "del", to, "dev", "ktsh0"]).catch(() => undefined);
  }
  // In the pod netns: only loopback TCP is redirected, and only replies come back in from the tap.
  const rules = (await run("nsenter", [`--net=${await podNetnsPath(cri, kataA.podSandboxId)}`, "--", "iptables", "-w", "10", "-t", "nat", "-S", "OUTPUT"])).stdout;
  assert.match(rules, /-A OUTPUT -d 127\.0\.0\.1\/32 -o lo -p tcp -j DNAT --to-destination 169\.254\.255\.2/, rules);
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

void test("CNI DEL finds the pod netns as CNI left it (no tap, no qdisc, no iptables rule of ours); removal leaves no netns or VM", { timeout: 120_000 }, async () => {
  assert.ok(ctd && cri && probe);
  const netns = await podNetnsPath(cri, kataB.podSandboxId);
  await cri.runtime.stopPodSandbox({ podSandboxId: kataB.podSandboxId });
  const seen = (await probe.seenAtDel()).get(kataB.podSandboxId);
  assert.ok(seen, "the probe plugin ran at CNI DEL");
  assert.deepEqual([...seen.links].sort(), ["eth0", "lo"], "only CNI's own links at CNI DEL");
  assert.deepEqual(seen.qdiscs.filter((q) => q.endsWith(":ingress")), [], "no ingress qdisc of ours at CNI DEL");
  assert.deepEqual(seen.iptables, [], "no iptables rule of ours (port-forward) at CNI DEL");
  await assert.rejects(access(netns), "containerd removed the netns after CNI DEL");
  await kataB.remove();
  pods.splice(pods.indexOf(kataB), 1);
});
