// The host half of pod networking against real network namespaces (no VM): a veth whose far end
// sits in a second netns, as the bridge CNI plugin leaves it. Attaching finds the veth, its
// addresses and routes, and mirrors it to a tap with tc; undoing leaves the netns as CNI made it,
// also when attaching fails half-way. Nothing here touches the host's own network.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadGuestAssets } from "../../src/guest/assets.js";
import { Sandbox } from "../../src/sandbox/sandbox.js";
import { KataError } from "../../src/util/errors.js";
import { attachPodNetwork, detachStalePodNetwork, podNetworkRecord } from "../../src/sandbox/network/pod-network.js";
import { removeLinkPart } from "../../src/sandbox/network/tc-mirror.js";
import { UndoStack } from "../../src/sandbox/undo-stack.js";
import { run } from "../../src/util/exec.js";
import { createNetns, deleteNetns } from "../harness/netns.js";

const tag = randomBytes(3).toString("hex");
const outerName = `ktsn-o-${tag}`;
const podName = `ktsn-p-${tag}`;
let podNs = "";

const inPod = async (file: string, args: string[]): Promise<string> => (await run("nsenter", [`--net=${podNs}`, "--", file, ...args])).stdout;
const links = async (): Promise<string[]> => (JSON.parse(await inPod("ip", ["-j", "link", "show"])) as { ifname: string }[]).map((l) => l.ifname).sort();
/** Every iptables rule in the pod netns (tables raw, nat, filter), policies left out. */
const iptablesRules = async (): Promise<string[]> => {
  const out: string[] = [];
  for (const t of ["raw", "nat", "filter"]) out.push(...(await inPod("iptables", ["-w", "10", "-t", t, "-S"])).split("\n").filter((l) => l.startsWith("-A")));
  return out;
};
const arpIgnore = async (): Promise<string> => (await inPod("sysctl", ["-n", "net.ipv4.conf.eth0.arp_ignore"])).trim();
const qdiscKinds = async (dev: string): Promise<string[]> => (JSON.parse(await inPod("tc", ["-j", "qdisc", "show", "dev", dev])) as { kind: string }[]).map((q) => q.kind);

before(async () => {
  await createNetns(outerName);
  podNs = await createNetns(podName);
  await run("ip", ["-n", outerName, "link", "add", "vk0", "type", "veth", "peer", "name", "eth0", "netns", podName]);
  await run("ip", ["-n", outerName, "addr", "add", "10.99.0.1/24", "dev", "vk0"]);
  await run("ip", ["-n", outerName, "link", "set", "vk0", "up"]);
  await inPod("ip", ["addr", "add", "10.99.0.2/24", "dev", "eth0"]);
  await inPod("ip", ["link", "set", "eth0", "mtu", "1400", "up"]);
  await inPod("ip", ["route", "add", "default", "via", "10.99.0.1", "dev", "eth0"]);
});

after(async () => {
  await deleteNetns(podName);
  await deleteNetns(outerName);
  const left = (await run("ip", ["netns", "list"])).stdout;
  assert.ok(!left.includes(tag), `test netns left behind: ${left}`);
});

void test("attach mirrors the CNI veth into a tap with tc and describes it for the VMM and the guest", { timeout: 60_000 }, async () => {
  const undo = new UndoStack();
  try {
    const net = await attachPodNetwork(podNs, undo);
    const mac = (JSON.parse(await inPod("ip", ["-j", "link", "show", "dev", "eth0"])) as { address: string }[])[0]?.address;
    assert.deepEqual(net.netDevices, [{ tapName: "tap0_kata", mac }]);
    // The guest NIC also gets the port-forward link address, after CNI's (docs/network.md).
    const addresses = [
      { family: 4, address: "10.99.0.2", prefixLength: 24 },
      { family: 4, address: "169.254.255.2", prefixLength: 32 },
    ];
    assert.deepEqual(net.interfaces, [{ name: "eth0", mac, mtu: 1400, addresses }]);
    assert.deepEqual(
      net.routes.filter((r) => r.family === 4).map((r) => [r.dest, r.gateway, r.device]),
      [
        ["", "10.99.0.1", "eth0"],
        ["10.99.0.0/24", "", "eth0"],
        ["169.254.255.1/32", "", "eth0"],
      ],
    );
    assert.match(await inPod("ip", ["-4", "addr", "show", "dev", "tap0_kata"]), /inet 169\.254\.255\.1 peer 169\.254\.255\.2\/32/);
    assert.match(await inPod("ip", ["neigh", "show", "dev", "tap0_kata"]), new RegExp(`169\\.254\\.255\\.2 lladdr ${mac ?? "?"} PERMANENT`));
    assert.equal((await inPod("sysctl", ["-n", "net.ipv4.conf.tap0_kata.route_localnet"])).trim(), "1");
    assert.equal(await arpIgnore(), "8");
    assert.equal((await iptablesRules()).length, 6, (await iptablesRules()).join("\n"));
    assert.deepEqual(await links(), ["eth0", "lo", "tap0_kata"]);
    const tapMtu = (JSON.parse(await inPod("ip", ["-j", "link", "show", "dev", "tap0_kata"])) as { mtu: number }[])[0]?.mtu;
    assert.equal(tapMtu, 1400, "the tap takes the veth's MTU");
    assert.ok((await qdiscKinds("eth0")).includes("ingress"));
    assert.match(await inPod("tc", ["filter", "show", "dev", "eth0", "ingress"]), /mirred \(Egress Redirect to device tap0_kata\)/);
    assert.match(await inPod("tc", ["filter", "show", "dev", "tap0_kata", "ingress"]), /mirred \(Egress Redirect to device eth0\)/);
  } finally {
    await undo.unwind();
  }
  assert.deepEqual(await links(), ["eth0", "lo"], "the tap is gone");
  assert.ok(!(await qdiscKinds("eth0")).includes("ingress"), "the veth's ingress qdisc is gone");
  assert.match(await inPod("ip", ["-4", "addr", "show", "dev", "eth0"]), /10\.99\.0\.2\/24/, "CNI's address is untouched");
  assert.deepEqual(await iptablesRules(), [], "the port-forward rules are gone");
  assert.equal(await arpIgnore(), "0", "the veth's arp_ignore is back");
});

void test("a failure half-way is undone: nothing of ours stays, and what was there before stays", { timeout: 60_000 }, async () => {
  // Someone else's ingress qdisc on the veth makes our `tc qdisc add` fail after the tap exists.
  await inPod("tc", ["qdisc", "add", "dev", "eth0", "handle", "ffff:", "ingress"]);
  const undo = new UndoStack();
  try {
    await assert.rejects(attachPodNetwork(podNs, undo), /tc qdisc add dev eth0/);
    await undo.unwind();
    assert.deepEqual(await links(), ["eth0", "lo"], "the tap made before the failure is gone");
    assert.ok((await qdiscKinds("eth0")).includes("ingress"), "a qdisc that was not ours is left alone");
  } finally {
    await inPod("tc", ["qdisc", "del", "dev", "eth0", "handle", "ffff:", "ingress"]);
  }
});

void test("stale cleanup from the state record removes the mirror when its owner died", { timeout: 60_000 }, async () => {
  // The owner's undo stack is lost with it: only the record in the state file remains.
  const net = await attachPodNetwork(podNs, new UndoStack());
  // One rule already gone (someone flushed it): the others still go, one by one.
  await inPod("iptables", ["-w", "10", "-t", "nat", "-F", "OUTPUT"]);
  await detachStalePodNetwork(podNetworkRecord(net));
  assert.deepEqual(await links(), ["eth0", "lo"]);
  assert.ok(!(await qdiscKinds("eth0")).includes("ingress"));
  assert.deepEqual(await iptablesRules(), [], "the port-forward rules are gone");
  await inPod("sysctl", ["-qw", "net.ipv4.conf.eth0.arp_ignore=0"]); // CNI DEL deletes the veth with it; the next test wants it clean
  await detachStalePodNetwork({ netnsPath: `${podNs}-gone`, veths: ["eth0"], taps: ["tap0_kata"] }); // netns gone: nothing to do
});

void test("a sandbox whose VM cannot start undoes the mirror it made: the netns is as CNI left it", { timeout: 60_000 }, async () => {
  const stateRoot = await mkdtemp(join(tmpdir(), "ktsn-state-"));
  const saved = process.env.KATA_TS_STATE_DIR;
  process.env.KATA_TS_STATE_DIR = stateRoot;
  try {
    const assets = await loadGuestAssets();
    // The taps exist by the time the VMM checks its config; a missing kernel fails it there.
    const broken = { ...assets, kernelPath: join(stateRoot, "no-such-vmlinux") };
    await assert.rejects(Sandbox.create({ id: `ktsn-${tag}`, assets: broken, netnsPath: podNs, accel: "tcg" }), (err: unknown) => {
      assert.ok(err instanceof KataError && err.code === "NOT_FOUND", String(err));
      return true;
    });
    assert.deepEqual(await links(), ["eth0", "lo"], "no tap left");
    assert.ok(!(await qdiscKinds("eth0")).includes("ingress"), "no qdisc left");
    assert.deepEqual(await iptablesRules(), [], "no port-forward rule left");
    assert.equal(await arpIgnore(), "0", "the veth's arp_ignore is back");
    assert.deepEqual(await readdir(stateRoot), [], "no sandbox state left");
  } finally {
    if (saved === undefined) delete process.env.KATA_TS_STATE_DIR;
    else process.env.KATA_TS_STATE_DIR = saved;
    await rm(stateRoot, { recursive: true, force: true });
  }
});

void test("undo after CNI already deleted the veth still removes the tap", { timeout: 60_000 }, async () => {
  const undo = new UndoStack();
  await attachPodNetwork(podNs, undo);
  // As if CNI DEL ran first: the veth (and its qdisc) vanish with it.
  await inPod("ip", ["link", "del", "dev", "eth0"]);
  await undo.unwind();
  assert.deepEqual(await links(), ["lo"]);
  assert.deepEqual(await iptablesRules(), [], "rules naming the vanished veth are removed too");
});

void test("a link removed by someone else while the teardown removes it counts as removed; one still there after a failure is a failure", { timeout: 60_000 }, async () => {
  // containerd may run CNI DEL beside a lost pod's Delete: the veth (or the whole netns) goes
  // between the teardown's check and its `tc`/`ip` call, which then fails. That must not fail the
  // Delete (a failed Delete left the shim running with nothing to do).
  await inPod("ip", ["link", "add", "ktsdummy0", "type", "veth", "peer", "name", "ktsdummy1"]);
  try {
    await removeLinkPart(podNs, "ktsdummy0", async () => {
      await inPod("ip", ["link", "del", "ktsdummy0"]); // the other side wins the race
      throw new Error("Cannot find device \"ktsdummy0\"");
    });
    assert.ok(!(await links()).includes("ktsdummy0"));
    await inPod("ip", ["link", "add", "ktsdummy0", "type", "veth", "peer", "name", "ktsdummy1"]);
    await assert.rejects(
      removeLinkPart(podNs, "ktsdummy0", () => Promise.reject(new Error("Operation not permitted"))),
      /Operation not permitted/,
      "a link that is still there was not removed",
    );
  } finally {
    await inPod("ip", ["link", "del", "ktsdummy0"]).catch(() => undefined);
  }
  const undo = new UndoStack();
  undo.push("fails", () => Promise.reject(new Error("qdisc busy")));
  undo.push("works", () => Promise.resolve());
  await assert.rejects(undo.unwind(), /teardown failed for: fails \(first: qdisc busy\)/, "the first failure's words reach containerd's log");
});
