// The pool's flush and rehearsal of the pod path (src/pool/pooled-vm.ts, src/agent/pod-path-rehearsal.ts),
// on real VMs booted as the pool boots them (PrepareSandbox with the container warm-up):
// - a rehearsed VM, once adopted, shows a pod nothing of the rehearsal: seen from a container that
//   sees the whole guest (its PID namespace, pid 1's root and mount table), no documentation
//   address (192.0.2.x) in any table, the NIC down with its pool MAC, no warm-up process, mount,
//   cgroup, bundle or crun state; then the pod's own UpdateNetwork gives the NIC the pod's MAC and
//   address (and still no 192.0.2.x), and its containers run;
// - a flush that fails (its deadline passed) or a rehearsal that fails (a kernel parameter it does
//   not understand) fails the boot: no VM is offered, none is left running, paused or on disk, and
//   the pool keeps booting (it backs off and tries again).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { parseConfig, selectedVmmConfig } from "../../src/config/index.js";
import { adoptPooledVm } from "../../src/pool/adopt.js";
import { PooledVm } from "../../src/pool/pooled-vm.js";
import { Pools } from "../../src/pool/refill.js";
import { poolShape, type PoolShape } from "../../src/pool/shape.js";
import { runSpec } from "../../src/sandbox/default-spec.js";
import type { NetnsSnapshot } from "../../src/sandbox/network/inspect.js";
import { guestNetworkView } from "../../src/sandbox/network/pod-network.js";
import { Sandbox } from "../../src/sandbox/sandbox.js";
import type { SandboxContainer as Container } from "../../src/sandbox/container.js";
import { isKataError } from "../../src/util/errors.js";
import { createLogger } from "../../src/util/log.js";
import { processesMentioning } from "../harness/processes.js";
import { leftovers, makeVmFixture, type VmFixture } from "./agent-container-vm-fixture.js";
import { canTrimTcgCache } from "../../src/hypervisor/types.js";

let fx: VmFixture;
let shape: PoolShape;
const log = createLogger("test.pool-rehearsal");

before(async () => {
  fx = await makeVmFixture();
  const config = parseConfig("", "built-in defaults");
  const vmm = selectedVmmConfig(config);
  shape = poolShape(config, fx.assets, { vcpus: vmm.default_vcpus, memoryMiB: vmm.default_memory }, "");
});

after(async () => {
  const left = leftovers(fx.dir, fx.stateRoot);
  const procs = await processesMentioning(fx.dir);
  await fx.cleanup();
  assert.deepEqual(left, [], "nothing of the tests left");
  assert.deepEqual(procs.map((p) => p.cmdline.join(" ")), [], "no QEMU or virtiofsd of the tests left");
});

const policy = { bootTimeoutMs: 600_000, warmUpContainers: true, rehearsePodPath: true };

/** stdout of `sh -c script` exec'd in `ctr` (status 0 asserted). */
async function sh(ctr: Container, id: string, script: string): Promise<string> {
  const p = await ctr.exec(id, { args: ["sh", "-c", script], cwd: "/", user: { uid: 0, gid: 0 }, env: ["PATH=/bin"] });
  const out = new PassThrough();
  const parts: Buffer[] = [];
  out.on("data", (b: Buffer) => parts.push(b));
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  const [, , st] = await Promise.all([p.pumpOutput("stdout", out), p.pumpOutput("stderr", sink), p.wait(AbortSignal.timeout(60_000))]);
  assert.equal(st.status, 0, `${id} exited ${st.status}`);
  return Buffer.concat(parts).toString();
}

// What the guest shows, from a container in the guest's PID namespace that may read pid 1's root
// (CAP_SYS_PTRACE). The script spells none of the names it looks for, so its own command line
// does not match.
const INSPECT = [
  'w=kata-ts-warm; w="$w-up"; r=warm; r="$r-up-rootfs"; t=192.0.2; t="$t."',
  'for p in /proc/[0-9]*; do c=$(tr "\\0" " " < $p/cmdline 2>/dev/null); [ -n "$c" ] && echo "process: $c"; done',
  'echo "mac: $(cat /sys/class/net/eth0/address)"; echo "operstate: $(cat /sys/class/net/eth0/operstate)"',
  'all=$(for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null; echo; done; ls /proc/1/root/sys/fs/cgroup/kata-ts /proc/1/root/run/kata-ts/containers /proc/1/root/run/kata-ts/crun /proc/1/root/run/kata-ts; cat /proc/1/mountinfo)',
  'echo "$all" | grep -e "$w" -e "$r" | sed "s/^/warm-up left: /"',
  'cat /proc/net/fib_trie /proc/net/route /proc/net/arp /proc/net/if_inet6 | grep -F "$t" | sed "s/^/test address left: /"',
  'grep -F "$t" /proc/net/fib_trie | head -1 | sed "s/^/test address left: /"',
  "grep -o '10\\.88\\.0\\.5' /proc/net/fib_trie | head -1 | sed 's/^/pod address: /'",
  "exit 0",
].join("\n");

void test("a rehearsed pooled VM shows the pod nothing of the rehearsal, and the pod's network and containers work", { timeout: 900_000 }, async () => {
  const pooled = await PooledVm.boot(shape, join(fx.dir, "vms"), policy);
  const handle = pooled.handOver();
  const consoleLog = await readFile(join(handle.dir, "vm", "console.log"), "utf8");
  assert.match(consoleLog, /pod path rehearsed in \d+ ms \(network on eth0/, `the guest says it rehearsed:\n${consoleLog.split("\n").filter((l) => l.includes("kata-ts-agent")).join("\n")}`);

  const sb = await Sandbox.create({ id: `rehearsed-${process.pid}`, adopt: adoptPooledVm({ handle, podNetns: {} as NetnsSnapshot }, log) });
  try {
    const spec = runSpec({ args: ["sleep", "100000"] });
    spec.linux!.namespaces = spec.linux!.namespaces!.filter((n) => n.type !== "pid" && n.type !== "cgroup");
    const caps = [...(spec.process!.capabilities!.bounding ?? []), "CAP_SYS_PTRACE"];
    spec.process!.capabilities = { bounding: caps, effective: caps, permitted: caps };
    const ctr = await sb.createContainer({ id: "inspect", spec, rootfs: fx.rootfs });
    await ctr.start();

    const before = await sh(ctr, "before-network", INSPECT);
    assert.match(before, /^process: .*node/m, `the inspector sees the guest's processes (the agent):\n${before}`);
    assert.deepEqual(before.split("\n").filter((l) => /^(warm-up|test address) left: /.test(l)), [], `nothing of the rehearsal in the guest:\n${before}`);
    assert.match(before, new RegExp(`^mac: ${handle.mac}$`, "m"), "the NIC has its pool MAC back");
    assert.match(before, /^operstate: down$/m, "the NIC is down until the pod's network comes");
    assert.ok(before.split("\n").filter((l) => /^process: ip /.test(l)).length <= 1, `at most the warm ip adoption writes to:\n${before}`);

    // The pod's network, as adoption sends it.
    const podMac = "02:42:0a:58:00:05";
    const net = guestNetworkView(
      [{ name: "eth0", mac: podMac, currentMac: handle.mac, mtu: 1500, addresses: [{ family: 4, address: "10.88.0.5", prefixLength: 16 }] }],
      [
        { dest: "", gateway: "10.88.0.1", device: "eth0", source: "", scope: 0, family: 4 },
        { dest: "10.88.0.0/16", gateway: "", device: "eth0", source: "10.88.0.5", scope: 253, family: 4 },
      ],
    );
    await sb.agent.updateNetwork(net.interfaces, net.routes);
    const afterNet = await sh(ctr, "after-network", INSPECT);
    assert.deepEqual(afterNet.split("\n").filter((l) => /^(warm-up|test address) left: /.test(l)), [], `nothing of the rehearsal once the pod's network is in:\n${afterNet}`);
    assert.match(afterNet, new RegExp(`^mac: ${podMac}$`, "m"), "the pod's MAC");
    assert.match(afterNet, /^pod address: 10\.88\.0\.5$/m, `the pod's address:\n${afterNet}`);
    // Once the pod's, an adopted VM gives its TCG cache back like a booted one (split-wx is part of the shape).
    const vm = sb.vm;
    assert.ok(vm !== undefined && canTrimTcgCache(vm), "an adopted VM can trim its TCG cache");
    const trim = await vm.trimTcgCache(10_000);
    assert.ok(trim.beforeBytes > 20 * 1024 * 1024 && trim.afterBytes < 8 * 1024 * 1024, `the adopted VM's cache given back: ${trim.beforeBytes} -> ${trim.afterBytes} bytes`);
    assert.equal(await sh(ctr, "after-trim", "echo trimmed"), "trimmed\n");
    await ctr.delete();
  } finally {
    await sb.destroy();
  }
});

void test("a failed flush fails the pooled boot: nothing offered, nothing left running, paused or on disk", { timeout: 900_000 }, async () => {
  // A deadline the gdbstub cannot meet: the flush fails (and closes the gdbstub, resumes the VM) and the boot undoes itself.
  await assert.rejects(PooledVm.boot(shape, join(fx.dir, "vms"), { ...policy, flushTimeoutMs: 1 }), (err: unknown) => isKataError(err, "DEADLINE_EXCEEDED") || isKataError(err, "UNAVAILABLE"));
  assert.deepEqual((await processesMentioning(join(fx.dir, "vms"))).map((p) => p.cmdline.join(" ")), [], "the VM's QEMU and virtiofsd are gone");
  assert.deepEqual(leftovers(join(fx.dir, "vms"), join(fx.dir, "vms")), [], "its dir, mounts and processes are gone");
});

void test("a failed rehearsal fails the pooled boot with the guest's reason, and the pool boots again", { timeout: 900_000 }, async () => {
  const broken: PoolShape = { ...shape, kernelCmdline: [...shape.kernelCmdline, "kata_ts.rehearse=bogus"] };
  const vmsDir = join(fx.dir, "pool-vms");
  const pools = new Pools({ vmsDir, poolSize: 1, maxShapes: 1, refillDelayMs: 0, handoverTimeoutMs: 60_000, boot: policy, log });
  pools.start();
  try {
    assert.equal(pools.addShape(broken), true);
    for (let i = 0; i < 1800 && pools.counters.bootFailures < 2; i++) await sleep(500);
    assert.ok(pools.counters.bootFailures >= 2, `the pool tried again after a failed rehearsal (${pools.counters.bootFailures} failures)`);
    assert.equal(pools.counters.booted, 0, "no VM with a failed rehearsal was counted as booted");
    assert.equal(pools.take(broken), undefined, "no VM offered");
  } finally {
    await pools.stop();
  }
  assert.deepEqual((await processesMentioning(vmsDir)).map((p) => p.cmdline.join(" ")), [], "the failed VMs' QEMU and virtiofsd are gone");
  assert.deepEqual(leftovers(vmsDir, vmsDir), [], "their dirs, mounts and processes are gone");
});
