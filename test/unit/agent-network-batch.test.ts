// UpdateNetwork's one `ip -batch` (src/agent/network/network.ts): the lines it builds, run by the
// real iproute2 (the host's is the guest image's version, Debian's 6.1) against a veth in a scratch
// netns that stands in for the guest NIC: a live MAC change on a link that is up, the name, MTU,
// addresses and routes in one process, and one bad line failing the whole call.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { networkLines } from "../../src/agent/network/network.js";
import { interfaceLines } from "../../src/agent/network/interface.js";
import type { GuestInterface, GuestRoute } from "../../src/protocol/contract/network.js";
import { run } from "../../src/util/exec.js";
import { createNetns, deleteNetns } from "../harness/netns.js";

const ns = `kts-ut-net-${randomBytes(3).toString("hex")}`;
const POOL_MAC = "02:11:22:33:44:55";
const want: GuestInterface = { name: "eth0", mac: "02:aa:bb:cc:dd:ee", currentMac: POOL_MAC, mtu: 1400, addresses: [{ family: 4, address: "10.88.0.5", prefixLength: 16 }, { family: 4, address: "169.254.77.2", prefixLength: 32 }] };
const routes: GuestRoute[] = [
  { dest: "", gateway: "10.88.0.1", device: "eth0", source: "", scope: 0, family: 4 },
  { dest: "10.88.0.0/16", gateway: "", device: "eth0", source: "10.88.0.5", scope: 253, family: 4 },
  { dest: "169.254.77.1/32", gateway: "", device: "eth0", source: "169.254.77.2", scope: 253, family: 4 },
];

/** The batch as the agent runs it (ip-tool.ts), in the scratch netns; a non-zero exit answers its error. */
async function batch(lines: string[][]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  try {
    const r = await run("ip", ["-n", ns, "-json", "-batch", "-"], { input: `${lines.map((l) => l.join(" ")).join("\n")}\n`, timeoutMs: 15_000 });
    return { exitCode: 0, ...r };
  } catch (err) {
    return { exitCode: 1, stdout: "", stderr: (err as Error).message };
  }
}

before(async () => {
  await createNetns(ns);
  await run("ip", ["-n", ns, "link", "add", "nic0", "address", POOL_MAC, "type", "veth", "peer", "name", "peer0"], { timeoutMs: 10_000 });
  await run("ip", ["-n", ns, "link", "set", "peer0", "up"], { timeoutMs: 10_000 });
});

after(async () => {
  await deleteNetns(ns);
  const left = await run("ip", ["netns", "list"], { timeoutMs: 10_000 });
  assert.doesNotMatch(left.stdout, new RegExp(ns), "the scratch netns is gone");
});

void test("a MAC-only change takes no link down; a rename does", () => {
  const macOnly = interfaceLines(want, "eth0").map((l) => l.join(" "));
  assert.ok(!macOnly.some((l) => l.endsWith(" down")), macOnly.join("; "));
  assert.ok(macOnly.includes(`link set dev eth0 address ${want.mac}`));
  const rename = interfaceLines(want, "nic0").map((l) => l.join(" "));
  assert.ok(rename.indexOf("link set dev nic0 down") < rename.indexOf("link set dev nic0 name eth0"), rename.join("; "));
});

void test("one ip -batch gives the NIC its MAC (live, link up), name, MTU, addresses, then the routes, link routes first", async () => {
  await run("ip", ["-n", ns, "link", "set", "nic0", "up"], { timeoutMs: 10_000 });
  // Up, and named like the pod's veth already: the MAC changes while the link stays up.
  await run("ip", ["-n", ns, "link", "set", "nic0", "down"], { timeoutMs: 10_000 });
  await run("ip", ["-n", ns, "link", "set", "nic0", "name", "eth0"], { timeoutMs: 10_000 });
  await run("ip", ["-n", ns, "link", "set", "eth0", "up"], { timeoutMs: 10_000 });
  const lines = networkLines([want], ["eth0"], routes);
  assert.ok(!lines.some((l) => l.join(" ") === "link set dev eth0 down"), "no down for a MAC change");
  const res = await batch(lines);
  assert.equal(res.exitCode, 0, res.stderr);
  const shown = res.stdout.trim().split("\n").map((l) => JSON.parse(l) as unknown);
  assert.equal(shown.length, 2, "one answer per show line: the NIC, then the routes");
  const [link] = shown[0] as { ifname: string; address: string; mtu: number; flags: string[]; addr_info: { local: string; scope: string }[] }[];
  assert.equal(link?.ifname, "eth0");
  assert.equal(link?.address, want.mac);
  assert.equal(link?.mtu, 1400);
  assert.ok(link?.flags.includes("UP"));
  assert.deepEqual(link?.addr_info.filter((a) => a.scope === "global").map((a) => a.local), ["10.88.0.5", "169.254.77.2"]);
  const shownRoutes = (shown[1] as { dst: string; gateway?: string }[]).map((r) => `${r.dst}${r.gateway ? ` via ${r.gateway}` : ""}`);
  assert.deepEqual(shownRoutes.sort(), ["10.88.0.0/16", "169.254.77.1", "default via 10.88.0.1"]);
});

void test("the same call again converges (routes flushed and replaced, addresses flushed and re-added)", async () => {
  const res = await batch(networkLines([{ ...want, currentMac: want.mac }], ["eth0"], routes));
  assert.equal(res.exitCode, 0, res.stderr);
  const routesNow = JSON.parse((await run("ip", ["-n", ns, "-j", "route", "show"], { timeoutMs: 10_000 })).stdout) as unknown[];
  assert.equal(routesNow.length, 3);
});

void test("a line iproute2 refuses fails the whole batch (non-zero exit), so the call fails", async () => {
  const bad: GuestRoute = { dest: "10.99.0.0/16", gateway: "10.77.0.1", device: "eth0", source: "", scope: 0, family: 4 };
  const res = await batch(networkLines([{ ...want, currentMac: want.mac }], ["eth0"], [...routes, bad]));
  assert.notEqual(res.exitCode, 0, "an unreachable gateway is refused");
  assert.match(res.stderr, /Nexthop has invalid gateway|unreachable|Error/i);
});

void test("a read-only batch (PrepareSandbox's warm-up: no NIC, no route) changes nothing", async () => {
  const before = (await run("ip", ["-n", ns, "-j", "addr", "show"], { timeoutMs: 10_000 })).stdout;
  const res = await batch(networkLines([], [], []));
  assert.equal(res.exitCode, 0, res.stderr);
  assert.deepEqual(networkLines([], [], []), [["route", "show"]]);
  assert.equal((await run("ip", ["-n", ns, "-j", "addr", "show"], { timeoutMs: 10_000 })).stdout, before);
});
