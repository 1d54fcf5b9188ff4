// Pure pieces of pod networking: reading `ip -j` output from a CNI netns, what the sandbox spec
// says about the pod network (hostNetwork, netns path, resolv.conf), and the guest's route commands.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { orderRoutes, routeArgs } from "../../src/agent/network/routes.js";
import type { GuestRoute } from "../../src/protocol/contract/network.js";
import { isOurTap, parseInterfaces, parseRoutes, tapName } from "../../src/sandbox/network/inspect.js";
import { HOST_NETWORK_REFUSED, podDns, podNetworkMode, requireOwnNetwork, resolvConfLines } from "../../src/sandbox/network/pod-spec.js";
import { guestNetworkView } from "../../src/sandbox/network/pod-network.js";
import { PF_GUEST_ADDRESS, PF_HOST_ADDRESS } from "../../src/sandbox/network/port-forward.js";
import { KataError } from "../../src/util/errors.js";

// Recorded from a bridge-CNI pod netns (iproute2 6.1), plus one of our taps from an earlier attach.
const ADDR_JSON = [
  { ifindex: 1, ifname: "lo", mtu: 65536, link_type: "loopback", address: "00:00:00:00:00:00", addr_info: [{ family: "inet", local: "127.0.0.1", prefixlen: 8, scope: "host" }] },
  {
    ifindex: 2,
    ifname: "eth0",
    mtu: 1500,
    link_type: "ether",
    address: "76:05:ba:6b:4b:63",
    addr_info: [
      { family: "inet", local: "10.244.77.2", prefixlen: 24, scope: "global" },
      { family: "inet6", local: "fd00::2", prefixlen: 64, scope: "global" },
      { family: "inet6", local: "fe80::7405:baff:fe6b:4b63", prefixlen: 64, scope: "link" },
    ],
  },
  { ifindex: 3, ifname: "tap0_kata", mtu: 1500, link_type: "ether", address: "d2:d9:62:31:b9:02", addr_info: [] },
];

void test("parseInterfaces keeps CNI's ether links with their global addresses; skips lo and our taps", () => {
  assert.deepEqual(parseInterfaces(ADDR_JSON), [
    {
      name: "eth0",
      mac: "76:05:ba:6b:4b:63",
      mtu: 1500,
      addresses: [
        { family: 4, address: "10.244.77.2", prefixLength: 24 },
        { family: 6, address: "fd00::2", prefixLength: 64 },
      ],
    },
  ]);
  assert.equal(tapName(0), "tap0_kata");
  assert.ok(isOurTap("tap7_kata") && !isOurTap("eth0"));
});

void test("parseRoutes maps default, link-scope and source routes on CNI's devices only", () => {
  const v4 = [
    { dst: "default", gateway: "10.244.77.1", dev: "eth0" },
    { dst: "10.244.77.0/24", dev: "eth0", protocol: "kernel", scope: "link", prefsrc: "10.244.77.2" },
    { dst: "192.168.9.0/24", dev: "other0", scope: "link" },
  ];
  assert.deepEqual(parseRoutes(4, v4, ["eth0"]), [
    { dest: "", gateway: "10.244.77.1", device: "eth0", source: "", scope: 0, family: 4 },
    { dest: "10.244.77.0/24", gateway: "", device: "eth0", source: "10.244.77.2", scope: 253, family: 4 },
  ]);
  const v6 = [
    { dst: "fd00::/64", dev: "eth0", protocol: "kernel" },
    { dst: "fe80::/64", dev: "eth0", protocol: "kernel" },
    { dst: "ff00::/8", dev: "eth0", type: "multicast" },
  ];
  assert.deepEqual(parseRoutes(6, v6, ["eth0"]), [{ dest: "fd00::/64", gateway: "", device: "eth0", source: "", scope: 0, family: 6 }]);
});

void test("podNetworkMode: netns path, fresh netns, or none at all (hostNetwork)", () => {
  const path = "/run/netns/cni-1";
  assert.deepEqual(podNetworkMode({ linux: { namespaces: [{ type: "pid" }, { type: "network", path }] } }), { kind: "netns", path });
  assert.deepEqual(podNetworkMode({ linux: { namespaces: [{ type: "network" }] } }), { kind: "none" });
  assert.deepEqual(podNetworkMode({ linux: { namespaces: [{ type: "pid" }, { type: "ipc" }] } }), { kind: "host" });
  assert.deepEqual(podNetworkMode({}), { kind: "host" });
  assert.throws(
    () => requireOwnNetwork({ linux: { namespaces: [{ type: "uts" }] } }),
    (err: unknown) => err instanceof KataError && err.code === "FAILED_PRECONDITION" && err.message === HOST_NETWORK_REFUSED,
  );
  assert.match(HOST_NETWORK_REFUSED, /hostNetwork/);
});

void test("podDns reads the resolv.conf the runtime bind-mounts on /etc/resolv.conf, without comments", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kts-net-unit-"));
  try {
    const file = join(dir, "resolv.conf");
    await writeFile(file, "# written by containerd\nsearch ns.svc.cluster.local\nnameserver 10.96.0.10\n\noptions ndots:5\n");
    const spec = { mounts: [{ destination: "/dev/shm", source: "/x" }, { destination: "/etc/resolv.conf", source: file, type: "bind" }] };
    assert.deepEqual(await podDns(spec), ["search ns.svc.cluster.local", "nameserver 10.96.0.10", "options ndots:5"]);
    assert.deepEqual(await podDns({ mounts: [{ destination: "/etc/resolv.conf", source: join(dir, "absent") }] }), []);
    assert.deepEqual(await podDns({}), []);
    assert.deepEqual(resolvConfLines("; old style\n  nameserver 1.1.1.1  \n"), ["nameserver 1.1.1.1"]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test("guest routes: link routes go in before gateway routes; ip arguments as arrays", () => {
  const gw: GuestRoute = { dest: "", gateway: "10.244.77.1", device: "eth0", source: "", scope: 0, family: 4 };
  const link: GuestRoute = { dest: "10.244.77.0/24", gateway: "", device: "eth0", source: "10.244.77.2", scope: 253, family: 4 };
  assert.deepEqual(orderRoutes([gw, link]), [link, gw]);
  assert.deepEqual(routeArgs(gw), ["-4", "route", "replace", "default", "via", "10.244.77.1", "dev", "eth0"]);
  assert.deepEqual(routeArgs(link), ["-4", "route", "replace", "10.244.77.0/24", "dev", "eth0", "src", "10.244.77.2", "scope", "link"]);
  assert.deepEqual(routeArgs({ ...link, family: 6, dest: "fd00::/64", source: "", scope: 0 }), ["-6", "route", "replace", "fd00::/64", "dev", "eth0"]);
  assert.throws(() => routeArgs({ ...gw, device: "" }), /names no device/);
});

void test("what an adopted VM's guest is told before the host side is done equals what it is told after", () => {
  // pooledGuestNetwork sends guestNetworkView's result while joinPodNetwork (addPortForward) runs;
  // addPortForward returns guestNetworkView's result too: one function, one answer.
  const interfaces = parseInterfaces(ADDR_JSON).map((i) => ({ ...i, currentMac: "02:00:00:00:00:01" }));
  const routes: GuestRoute[] = [{ dest: "", gateway: "10.244.77.1", device: "eth0", source: "", scope: 0, family: 4 }];
  const view = guestNetworkView(interfaces, routes);
  assert.deepEqual(view.interfaces[0]?.addresses.at(-1), { family: 4, address: PF_GUEST_ADDRESS, prefixLength: 32 }, "the port-forward address on the first NIC");
  assert.equal(view.interfaces[0]?.currentMac, "02:00:00:00:00:01", "the pool MAC the agent finds the NIC by");
  assert.deepEqual(view.routes.at(-1), { dest: `${PF_HOST_ADDRESS}/32`, gateway: "", device: "eth0", source: PF_GUEST_ADDRESS, scope: 253, family: 4 });
  assert.deepEqual(view.routes.slice(0, -1), routes, "the CNI routes first, unchanged");
  assert.deepEqual(guestNetworkView([], []), { interfaces: [], routes: [] }, "no NIC: nothing added");
});
