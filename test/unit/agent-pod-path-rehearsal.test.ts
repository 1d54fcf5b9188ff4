// The pod path's rehearsal in the guest (src/agent/pod-path-rehearsal.ts, network/rehearsal.ts): which
// NICs it rehearses on (a sysfs tree of the test's), the batch that undoes it, the check that the
// undo left every NIC as the pool booted it (its failures named), and the kernel parameters that
// pick its parts (a value it does not understand is refused, naming it). The real thing runs in
// test/integration/pool-rehearsal.test.ts.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rehearsedParts } from "../../src/agent/pod-path-rehearsal.js";
import { checkRestored, downEthernetNics, REHEARSAL_NET, rehearsalNetwork, undoLines } from "../../src/agent/network/rehearsal.js";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const POOL_MAC = "02:11:22:33:44:77";
const nic = { name: "eth0", mac: POOL_MAC, mtu: 1500 };

void test("the NICs rehearsed on: Ethernet links with a device behind them that are down (not lo, dummy0, or one already up)", async () => {
  const sys = await mkdtemp(join(tmpdir(), "kts-ut-rehearse-"));
  dirs.push(sys);
  const links: Record<string, { type: string; flags: string; address: string; mtu: string; device: boolean }> = {
    eth0: { type: "1", flags: "0x1002", address: POOL_MAC, mtu: "1500", device: true },
    eth1: { type: "1", flags: "0x1003", address: "02:00:00:00:00:09", mtu: "1500", device: true },
    dummy0: { type: "1", flags: "0x82", address: "9a:00:00:00:00:01", mtu: "1500", device: false },
    lo: { type: "772", flags: "0x9", address: "00:00:00:00:00:00", mtu: "65536", device: false },
  };
  for (const [name, l] of Object.entries(links)) {
    await mkdir(join(sys, name));
    for (const f of ["type", "flags", "address", "mtu"] as const) await writeFile(join(sys, name, f), `${l[f]}\n`);
    if (l.device) await symlink(sys, join(sys, name, "device"));
  }
  assert.deepEqual(await downEthernetNics(sys), [nic]);
});

void test("the rehearsal's network is a pod's with documentation addresses; its undo puts back MAC and MTU and reads the NIC and the routes back", () => {
  const net = rehearsalNetwork([nic]);
  assert.equal(net.interfaces[0]?.currentMac, POOL_MAC, "the NIC is found by its pool MAC");
  assert.notEqual(net.interfaces[0]?.mac, POOL_MAC, "the MAC changes live, as at adoption");
  for (const a of net.interfaces[0]?.addresses ?? []) assert.ok(a.address.startsWith(REHEARSAL_NET), a.address);
  for (const r of net.routes) assert.ok(r.gateway === "" || r.gateway.startsWith(REHEARSAL_NET), JSON.stringify(r));
  assert.deepEqual(undoLines([nic]), [
    ["route", "flush", "dev", "eth0"],
    ["addr", "flush", "dev", "eth0"],
    ["link", "set", "dev", "eth0", "down"],
    ["link", "set", "dev", "eth0", "address", POOL_MAC],
    ["link", "set", "dev", "eth0", "mtu", "1500"],
    ["addr", "show", "dev", "eth0"],
    ["route", "show"],
  ]);
});

void test("a NIC not left as the pool booted it fails the rehearsal, naming what is wrong", () => {
  const restored = [{ ifname: "eth0", address: POOL_MAC, mtu: 1500, flags: ["BROADCAST", "MULTICAST"], addr_info: [] }];
  // `route show` prints nothing when there is no route: one answer only.
  assert.doesNotThrow(() => checkRestored([nic], [restored]));
  assert.throws(
    () => checkRestored([nic], [[{ ifname: "eth0", address: "02:00:5e:00:53:01", mtu: 1400, flags: ["UP"], addr_info: [{}] }]]),
    /did not leave the guest's network as the pool booted it: eth0 has MAC 02:00:5e:00:53:01 instead of 02:11:22:33:44:77; eth0 has MTU 1400 instead of 1500; eth0 is still up; eth0 has 1 address\(es\) left/,
  );
  assert.throws(() => checkRestored([nic], [restored, [{ dst: "192.0.2.0/24", dev: "eth0" }]]), /1 route\(s\) left: .*192\.0\.2\.0\/24/);
  assert.throws(() => checkRestored([nic], []), /eth0 not read back/);
});

void test("kernel parameters pick the rehearsal's parts; a value it does not understand is refused, naming it", () => {
  assert.deepEqual(rehearsedParts("root=/dev/vda quiet"), { net: true, container: true, execs: 2 });
  assert.deepEqual(rehearsedParts("kata_ts.rehearse=net"), { net: true, container: false, execs: 2 });
  assert.deepEqual(rehearsedParts("kata_ts.rehearse=container kata_ts.rehearse_execs=1"), { net: false, container: true, execs: 1 });
  assert.throws(() => rehearsedParts("kata_ts.rehearse=bogus"), /kata_ts\.rehearse=bogus: use net or container/);
  assert.throws(() => rehearsedParts("kata_ts.rehearse_execs=-1"), /kata_ts\.rehearse_execs=-1: use a whole number from 0 to 10/);
});
