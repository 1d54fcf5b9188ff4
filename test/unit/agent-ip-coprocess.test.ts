// The warm `ip -json -batch -` co-process (src/agent/network/ip-coprocess.ts, ip-tool.ts) that a
// pooled VM's adoption writes UpdateNetwork's lines to, run with the real iproute2 (the host's is
// the guest image's version, Debian's 6.1) against a veth in a scratch netns standing in for the
// guest NIC: the same answers as a one-shot batch from one long-lived process; a failing line
// fails the call naming that line and what iproute2 said; a co-process gone or wedged makes the
// call run in a fresh `ip`; used once, it is ended.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { IpCoprocess } from "../../src/agent/network/ip-coprocess.js";
import { ipBatch, startWarmIp } from "../../src/agent/network/ip-tool.js";
import { networkLines } from "../../src/agent/network/network.js";
import type { GuestInterface, GuestRoute } from "../../src/protocol/contract/network.js";
import { run } from "../../src/util/exec.js";
import { isKataError } from "../../src/util/errors.js";
import { createNetns, deleteNetns } from "../harness/netns.js";

const ns = `kts-ut-ipco-${randomBytes(3).toString("hex")}`;
const nsArgs = ["-n", ns];
const POOL_MAC = "02:11:22:33:44:66";
const want: GuestInterface = { name: "eth0", mac: "02:aa:bb:cc:dd:e1", currentMac: POOL_MAC, mtu: 1400, addresses: [{ family: 4, address: "10.89.0.5", prefixLength: 16 }] };
const routes: GuestRoute[] = [
  { dest: "", gateway: "10.89.0.1", device: "eth0", source: "", scope: 0, family: 4 },
  { dest: "10.89.0.0/16", gateway: "", device: "eth0", source: "10.89.0.5", scope: 253, family: 4 },
];
const started: IpCoprocess[] = [];

const alive = (pid: number | undefined): boolean => {
  try {
    process.kill(pid ?? -1, 0);
    return true;
  } catch {
    return false;
  }
};

before(async () => {
  await createNetns(ns);
  await run("ip", ["-n", ns, "link", "add", "eth0", "address", POOL_MAC, "type", "veth", "peer", "name", "peer0"], { timeoutMs: 10_000 });
  await run("ip", ["-n", ns, "link", "set", "peer0", "up"], { timeoutMs: 10_000 });
});

after(async () => {
  for (const co of started) {
    co.close();
    await co.ended;
  }
  await deleteNetns(ns);
  assert.doesNotMatch((await run("ip", ["netns", "list"], { timeoutMs: 10_000 })).stdout, new RegExp(ns), "the scratch netns is gone");
  for (const co of started) assert.equal(alive(co.pid), false, `co-process ${co.pid} is gone`);
});

function coprocess(ipArgs: string[] = nsArgs, ipPath?: string): IpCoprocess {
  const co = new IpCoprocess(ipArgs, ipPath);
  started.push(co);
  return co;
}

void test("one long-lived ip answers each call's show lines, in order, and stays up between calls", async () => {
  const co = coprocess();
  // The first call's sentinel (`addr show dev lo`) leaves the next call's `addr show` whole.
  assert.deepEqual(await co.run([["route", "show"]], 10_000), [[]], "no route yet: an empty list");
  const pid = co.pid;
  const shown = await co.run(networkLines([want], ["eth0"], routes), 10_000);
  assert.equal(shown.length, 2, "one answer per show line: the NIC, then the routes");
  const [link] = shown[0] as { ifname: string; address: string; mtu: number; flags: string[]; addr_info: { local: string; scope: string }[] }[];
  assert.equal(link?.address, want.mac, "the live MAC change");
  assert.equal(link?.mtu, 1400);
  assert.ok(link?.flags.includes("UP"));
  assert.deepEqual(link?.addr_info.filter((a) => a.scope === "global").map((a) => a.local), ["10.89.0.5"]);
  const shownRoutes = (shown[1] as { dst: string; gateway?: string }[]).map((r) => `${r.dst}${r.gateway ? ` via ${r.gateway}` : ""}`);
  assert.deepEqual(shownRoutes.sort(), ["10.89.0.0/16", "default via 10.89.0.1"]);
  // Lines with no output answer nothing; the call still ends (at its sentinel).
  assert.deepEqual(await co.run([["link", "set", "dev", "eth0", "mtu", "1400"]], 10_000), []);
  assert.equal(co.pid, pid, "the same process served every call");
  assert.equal(co.alive, true);
  assert.equal(co.answered, 3);
  const table = (await run("ip", ["-n", ns, "route", "show"], { timeoutMs: 10_000 })).stdout;
  assert.match(table, /^default via 10\.89\.0\.1 dev eth0/m, "the kernel has the routes");
});

void test("a line the kernel refuses fails the call naming that line and iproute2's error; nothing after it runs", async () => {
  const co = coprocess();
  await co.run([["route", "show"]], 10_000); // the line numbers count on from earlier calls
  const bad: GuestRoute = { dest: "10.99.0.0/16", gateway: "10.77.0.1", device: "eth0", source: "", scope: 0, family: 4 };
  const lines = [...networkLines([{ ...want, currentMac: want.mac }], ["eth0"], [...routes, bad]), ["link", "set", "dev", "eth0", "mtu", "1300"]];
  await assert.rejects(co.run(lines, 10_000), (err: Error) => {
    assert.ok(isKataError(err, "INTERNAL"), String(err));
    assert.match(err.message, /failed at `ip route replace 10\.99\.0\.0\/16 via 10\.77\.0\.1 dev eth0`: .*(Nexthop has invalid gateway|unreachable)/i);
    return true;
  });
  await co.ended;
  assert.equal(co.alive, false, "iproute2 exits at the first failing line (no -force)");
  const mtu = JSON.parse((await run("ip", ["-n", ns, "-j", "link", "show", "dev", "eth0"], { timeoutMs: 10_000 })).stdout) as { mtu: number }[];
  assert.equal(mtu[0]?.mtu, 1400, "the line after the failing one did not run");
});

void test("an argument iproute2 cannot parse fails the call naming it", async () => {
  const co = coprocess();
  const lines = networkLines([{ ...want, currentMac: want.mac, addresses: [{ family: 4, address: "10.89.0.999", prefixLength: 16 }] }], ["eth0"], routes);
  await assert.rejects(co.run(lines, 10_000), /guest network set-up failed .*10\.89\.0\.999\/16/);
});

void test("a wedged co-process is killed at the deadline (UNAVAILABLE)", async () => {
  // Stands in for an ip that reads its input and never answers.
  const co = coprocess(["-c", "exec sleep 600", "stuck"], "sh");
  await assert.rejects(co.run([["route", "show"]], 500), (err: Error) => isKataError(err, "UNAVAILABLE") && /did not answer within 500 ms/.test(err.message));
  await co.ended;
  assert.equal(alive(co.pid), false, "killed");
});

void test("ipBatch: the warm co-process carries one batch and is then ended; gone, the lines run in a fresh ip", async () => {
  const co = await startWarmIp([["route", "show"]], nsArgs);
  started.push(co);
  assert.equal(co.answered, 1);
  const shown = await ipBatch(undefined, networkLines([{ ...want, currentMac: want.mac }], ["eth0"], routes), nsArgs);
  assert.equal(shown.length, 2);
  assert.equal(co.answered, 2, "the batch went to the warm co-process");
  await co.ended;
  assert.equal(alive(co.pid), false, "used once, it is ended");

  const dead = await startWarmIp([], nsArgs);
  started.push(dead);
  process.kill(dead.pid ?? -1, "SIGKILL");
  await dead.ended;
  const again = await ipBatch(undefined, networkLines([{ ...want, currentMac: want.mac }], ["eth0"], routes), nsArgs);
  assert.equal(again.length, 2, "a fresh ip ran the lines");
  assert.equal(dead.answered, 1);
  // A line the co-process does not carry (a `link show`, after which iproute2 6.1 prints later
  // `addr show`s without addresses in the same batch) runs in a fresh ip; the warm one stays unused.
  const spare = await startWarmIp([], nsArgs);
  started.push(spare);
  const link = (await ipBatch(undefined, [["link", "show", "dev", "eth0"]], nsArgs))[0] as { ifname: string }[];
  assert.equal(link[0]?.ifname, "eth0");
  assert.equal(spare.answered, 1, "not sent to the co-process");
  // With no warm co-process at all, as in a VM booted for its pod: a fresh ip.
  assert.equal((await ipBatch(undefined, [["route", "show"]], nsArgs)).length, 1);
});
