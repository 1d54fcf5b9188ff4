// The node installer end to end: `kata-ts install` (installNode) edits a private containerd's
// config.toml and installs the runtime into a temp root; a pod then runs through the installed
// handler in a real VM, QEMU and virtiofsd inside the pod's cgroup, the node-level shim server
// (the default) in its own; removing the pod removes that cgroup; uninstall restores config.toml
// byte for byte and removes the root.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { access, mkdir, mkdtemp, readdir, readFile, rm, rmdir } from "node:fs/promises";
import { release, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { connectCri, type CriClient } from "../../src/cri/client.js";
import { ContainerState, podSandboxConfig, waitForContainerState } from "../../src/cri/pod.js";
import { installNode, uninstallNode, type NodeInstallResult } from "../../src/deploy/node-install.js";
import { cgroupDirsOf, cgroupHierarchies } from "../../src/sandbox/host-cgroup.js";
import { assertNoLeaks, startContainerd, type PrivateContainerd } from "../harness/containerd.js";
import { BUSYBOX_IMAGE_REF, importTestImages } from "../harness/images.js";
import { isNodeShimCmdline, isShimServerCmdline } from "../../src/shim/bundle-path.js";
import { NODE_SHIM_CGROUP } from "../../src/shim/node-server/keeper.js";
import { processesMentioning } from "../harness/processes.js";

let ctd: PrivateContainerd | undefined;
let cri: CriClient | undefined;
let scratch = "";
let root = "";
let original = "";
let installed: NodeInstallResult | undefined;
const exists = (p: string) => access(p).then(() => true, () => false);

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "kts-inst-"));
  root = join(scratch, "opt", "kata-ts");
  ctd = await startContainerd({
    kataTs: false, // the handler comes from the node installer below, as on a real node
    beforeStart: async (configPath) => {
      original = await readFile(configPath, "utf8");
      // The harness puts <its dir>/bin first on containerd's PATH: the installer links the shim there.
      installed = await installNode({ root, containerdConfigPath: configPath, shimLinkDir: join(dirname(configPath), "bin"), restart: "never" });
    },
  });
  await importTestImages(ctd);
  cri = connectCri(ctd.address);
});

after(async () => {
  cri?.close();
  await ctd?.stop();
  if (scratch !== "") await rm(scratch, { recursive: true, force: true });
  if (ctd) await assertNoLeaks(ctd);
});

/** The shim processes (the node-level keeper and server, or a per-pod server), QEMU and virtiofsd of this containerd's pods, by what they are. */
async function podHostProcesses(baseDir: string) {
  const procs = await processesMentioning(baseDir);
  const pick = (re: RegExp) => procs.filter((p) => p.cmdline.some((a) => re.test(a)));
  return {
    shim: procs.filter((p) => isShimServerCmdline(p.cmdline) || isNodeShimCmdline(p.cmdline)),
    qemu: pick(/qemu-system/),
    virtiofsd: pick(/virtiofsd$/),
  };
}

// The node-level server's crash alone ends no pod (node-shim.test.ts); the keeper's and the
// server's deaths together close every connection, as a per-pod shim's death closes its own.
void test("a pod whose shim processes were killed: containerd's shim delete stops its VM and removes its cgroup", { timeout: 600_000 }, async () => {
  assert.ok(ctd && cri);
  const cgroupParent = `/kata-ts-e2e-${randomBytes(4).toString("hex")}`;
  const logDirectory = join(ctd.baseDir, "pods", "orphan");
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name: "orphan", uid: "uid-orphan", logDirectory, cgroupParent });
  const hierarchies = await cgroupHierarchies();
  try {
    const { podSandboxId } = await cri.runtime.runPodSandbox({ config, runtimeHandler: "kata-ts" });
    const procs = await podHostProcesses(ctd.baseDir);
    assert.equal(procs.shim.length, 2, "the node's keeper and server");
    for (const h of hierarchies) assert.ok(await exists(join(h.mount, cgroupParent, podSandboxId)), "the pod cgroup exists while the pod runs");
    for (const p of procs.shim) process.kill(p.pid, "SIGKILL");
    await cri.runtime.stopPodSandbox({ podSandboxId });
    await cri.runtime.removePodSandbox({ podSandboxId });
    // containerd cleans up after a dead shim (runs `shim delete`) in the background.
    let left = await podHostProcesses(ctd.baseDir);
    for (let i = 0; i < 300 && left.shim.length + left.qemu.length + left.virtiofsd.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = await podHostProcesses(ctd.baseDir);
    }
    if (left.qemu.length > 0) console.log((await readFile(ctd.logPath, "utf8")).split("\n").filter((l) => /delete|dead|shim/i.test(l)).slice(-30).join("\n"));
    assert.deepEqual([...left.shim, ...left.qemu, ...left.virtiofsd], [], "no shim, QEMU or virtiofsd left");
    const podCgroups = hierarchies.map((h) => join(h.mount, cgroupParent, podSandboxId));
    for (let i = 0; i < 100 && (await Promise.all(podCgroups.map(exists))).some(Boolean); i++) await new Promise((r) => setTimeout(r, 100));
    for (const c of podCgroups) assert.equal(await exists(c), false, `pod cgroup ${c} removed`);
  } finally {
    // The parent stands in for kubelet's pod cgroup: kubelet, not kata-ts, would remove it (and
    // on a failed run, whatever is left below it).
    for (const h of hierarchies) {
      const parent = join(h.mount, cgroupParent);
      const kids = await readdir(parent, { withFileTypes: true }).catch(() => []);
      for (const k of kids.filter((e) => e.isDirectory())) await rmdir(join(parent, k.name)).catch(() => undefined);
      await rmdir(parent).catch(() => undefined);
    }
  }
});

void test("installed kata-ts runs a pod in a VM, inside the pod's cgroup; uninstall restores config.toml byte for byte", { timeout: 600_000 }, async () => {
  assert.ok(ctd && cri && installed);
  assert.equal(installed.restart.restarted, false);
  const cgroupParent = `/kata-ts-e2e-${randomBytes(4).toString("hex")}`;
  const logDirectory = join(ctd.baseDir, "pods", "install");
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name: "installed", uid: "uid-installed", logDirectory, cgroupParent });
  const { podSandboxId } = await cri.runtime.runPodSandbox({ config, runtimeHandler: "kata-ts" });
  const hierarchies = await cgroupHierarchies();
  const podCgroups = hierarchies.map((h) => join(h.mount, cgroupParent, podSandboxId)).sort();
  let removed = false;
  try {
    const { containerId } = await cri.runtime.createContainer({
      podSandboxId,
      sandboxConfig: config,
      config: { metadata: { name: "sleeper" }, image: { image: BUSYBOX_IMAGE_REF }, command: ["sleep", "3600"], logPath: "sleeper.log" },
    });
    await cri.runtime.startContainer({ containerId });
    await waitForContainerState(cri, containerId, ContainerState.CONTAINER_RUNNING, { timeoutMs: 120_000 });
    const uname = await cri.runtime.execSync({ containerId, cmd: ["uname", "-r"], timeout: 60n });
    assert.equal(uname.exitCode, 0);
    assert.notEqual(Buffer.from(uname.stdout).toString().trim(), release(), "the pod runs its own kernel");

    const procs = await podHostProcesses(ctd.baseDir);
    assert.deepEqual(procs.shim.map((p) => p.cmdline.find((a) => a.startsWith("node-"))).sort(), ["node-keeper", "node-server"], "the node's keeper and server, no shim process of the pod's own");
    assert.equal(procs.qemu.length, 1, "one QEMU for the pod");
    assert.ok(procs.virtiofsd.length >= 1, "virtiofsd for the pod");
    // The shim containerd ran is the installed one: its node and code live under the install root.
    const shimCgroups = hierarchies.map((h) => join(h.mount, NODE_SHIM_CGROUP)).sort();
    for (const shim of procs.shim) {
      const script = shim.cmdline.slice(1).find((a) => !a.startsWith("--")); // node's own flags come first
      assert.ok(shim.cmdline[0]?.startsWith(`${root}/`) && script?.startsWith(`${root}/lib/`), shim.cmdline.join(" "));
      assert.deepEqual((await cgroupDirsOf(shim.pid)).sort(), shimCgroups, `${shim.cmdline.join(" ")} is in the node shim's cgroup, no pod's`);
    }
    for (const p of [...procs.qemu, ...procs.virtiofsd]) {
      assert.deepEqual((await cgroupDirsOf(p.pid)).sort(), podCgroups, `${p.cmdline[0]} (pid ${p.pid}) is in the pod's cgroup`);
    }

    await cri.runtime.stopContainer({ containerId, timeout: 0n });
    await cri.runtime.removeContainer({ containerId });
    await cri.runtime.stopPodSandbox({ podSandboxId });
    await cri.runtime.removePodSandbox({ podSandboxId });
    removed = true;
  } finally {
    if (!removed) {
      await cri.runtime.stopPodSandbox({ podSandboxId }).catch(() => undefined);
      await cri.runtime.removePodSandbox({ podSandboxId }).catch(() => undefined);
    }
  }
  for (const h of hierarchies) assert.equal(await exists(join(h.mount, cgroupParent)), false, `pod cgroup removed from ${h.mount}`);

  const un = await uninstallNode({ root, containerdConfigPath: ctd.configPath, restart: "never" });
  assert.equal(un.containerdConfig, "backup");
  assert.equal(await readFile(ctd.configPath, "utf8"), original, "config.toml restored byte for byte");
  assert.equal(await exists(root), false, "install root removed");
  assert.deepEqual(await readdir(join(ctd.baseDir, "bin")), [], "shim link removed");
});
