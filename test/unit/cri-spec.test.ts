// What kata-ts reads from the CRI plugin's OCI specs (host namespaces, PID sharing, propagation,
// block devices, sysctls) and how the agent turns sysctl names into /proc/sys paths.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pidNamespaceMode, podSysctls, refuseBlockDevices, refuseSharedPropagation, requireOwnPidAndIpc } from "../../src/sandbox/cri-spec.js";
import { applySysctls, sysctlPath } from "../../src/agent/container/sysctl.js";
import { signalDisposition } from "../../src/agent/container/ns-init-signal.js";
import { isKataError } from "../../src/util/errors.js";

const ns = (...types: string[]) => ({ linux: { namespaces: types.map((type) => ({ type })) } });

void test("hostPID and hostIPC specs (no pid / ipc namespace) are refused, naming the field", () => {
  requireOwnPidAndIpc(ns("pid", "ipc", "network"));
  assert.throws(() => requireOwnPidAndIpc(ns("ipc", "network")), (e) => isKataError(e, "FAILED_PRECONDITION") && /hostPID/.test(e.message));
  assert.throws(() => requireOwnPidAndIpc(ns("pid", "network")), (e) => isKataError(e, "FAILED_PRECONDITION") && /hostIPC/.test(e.message));
});

void test("PID namespace mode: a path shares the sandbox's (POD), none gives a private one (CONTAINER)", () => {
  assert.equal(pidNamespaceMode({ linux: { namespaces: [{ type: "pid", path: "/proc/42/ns/pid" }] } }), "pod");
  assert.equal(pidNamespaceMode(ns("pid")), "container");
  assert.throws(() => pidNamespaceMode(ns("ipc")), /hostPID/);
});

void test("rshared mounts and non-privileged block devices are refused; privileged device lists pass", () => {
  refuseSharedPropagation({ mounts: [{ destination: "/a", options: ["rbind", "rslave"] }] });
  assert.throws(() => refuseSharedPropagation({ mounts: [{ destination: "/data", options: ["rbind", "rshared"] }] }), /mount \/data Bidirectional/);
  const blk = { path: "/dev/xvdz", type: "b" };
  assert.throws(() => refuseBlockDevices({ linux: { devices: [blk], resources: { devices: [{ allow: false }] } } }), /block device \/dev\/xvdz/);
  refuseBlockDevices({ linux: { devices: [blk], resources: { devices: [{ allow: true }] } } });
  refuseBlockDevices({ linux: { devices: [{ path: "/dev/fuse", type: "c" }] } });
});

void test("sysctls: names map to /proc/sys paths; a missing one fails naming it", async () => {
  assert.deepEqual(podSysctls({ linux: { sysctl: { "kernel.shm_rmid_forced": "1" } } }), { "kernel.shm_rmid_forced": "1" });
  assert.throws(() => podSysctls({ linux: { sysctl: { a: 1 } } }), /sysctl a has a number value/);
  assert.equal(sysctlPath("net.ipv4.ip_forward"), "/proc/sys/net/ipv4/ip_forward");
  assert.equal(sysctlPath("net/ipv4/conf/eth0.100/forwarding"), "/proc/sys/net/ipv4/conf/eth0.100/forwarding");
  assert.throws(() => sysctlPath("kernel..x"), (e) => isKataError(e, "INVALID_ARGUMENT"));
  assert.throws(() => sysctlPath("../etc/passwd"), (e) => isKataError(e, "INVALID_ARGUMENT"));
  const root = await mkdtemp(join(tmpdir(), "kts-sysctl-"));
  try {
    await mkdir(join(root, "kernel"));
    await writeFile(join(root, "kernel", "msgmax"), "8192");
    await applySysctls({ "kernel.msgmax": "16384" }, root);
    assert.equal(await readFile(join(root, "kernel", "msgmax"), "utf8"), "16384");
    await assert.rejects(applySysctls({ "kernel.nope": "1" }, root), /sysctl kernel\.nope=1 cannot be applied in the pod's VM: the guest kernel has no such sysctl/);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

void test("signal disposition from /proc: this process catches SIGUSR2 once it has a handler, and is no namespace init", async () => {
  const before = await signalDisposition(process.pid, 12);
  assert.equal(before?.nsInit, false);
  assert.equal(before?.caught, false);
  const onUsr2 = (): void => undefined;
  process.on("SIGUSR2", onUsr2);
  try {
    assert.equal((await signalDisposition(process.pid, 12))?.caught, true);
  } finally {
    process.off("SIGUSR2", onUsr2);
  }
  assert.equal(await signalDisposition(2 ** 22 + 12345, 15), undefined, "a gone process");
});
