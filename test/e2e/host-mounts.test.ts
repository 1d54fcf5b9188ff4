// What a pod can do to the host's mounts, through CRI as kubelet drives it, on kata-ts and on runc
// (the reference). The hostPath tree is a shared mount with shared submounts (as anything under /
// on a systemd host), plus a mount the host adds while the pod runs. The container is privileged
// and has a read-only root: the worst the guest's root can do is tried.
import { test } from "node:test";
import assert from "node:assert/strict";
import { access, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { CriClient } from "../../src/cri/client.js";
import { ContainerState, podSandboxConfig, waitForContainerState } from "../../src/cri/pod.js";
import { MountPropagation } from "../../src/cri/gen/runtime/v1/api_pb.js";
import { useCriFixture } from "../harness/cri-fixture.js";
import { BUSYBOX_IMAGE_REF } from "../harness/images.js";
import { mountsUnder } from "../harness/mounts.js";
import { processesMentioning } from "../harness/processes.js";
import { hostMounts, makeHostMountTree, mountLate, removeHostMountTree, type HostMountTree } from "./host-mount-tree.js";

const fx = useCriFixture();
const exists = (p: string) => access(p).then(() => true, () => false);

async function sh(cri: CriClient, containerId: string, script: string): Promise<{ code: number; out: string }> {
  const r = await cri.runtime.execSync({ containerId, cmd: ["sh", "-c", script], timeout: 60n });
  return { code: r.exitCode, out: Buffer.from(r.stdout).toString() + Buffer.from(r.stderr).toString() };
}

/** Polls `cat path` in the container until it prints `want` (host -> container is not instant on virtio-fs). */
async function waitForContent(cri: CriClient, containerId: string, path: string, want: string): Promise<void> {
  let last = "";
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; ) {
    last = (await sh(cri, containerId, `cat ${path}`)).out;
    if (last === want) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.equal(last, want, `${path} in the container`);
}

/** Tries, as privileged root in the container, to make each path writable again and to write there. */
const remountAndWrite = (paths: string[], files: string[]) =>
  [
    // A virtio-fs submount is mounted in the guest when first walked into.
    ...paths.map((p) => `ls ${p} >/dev/null`),
    ...paths.map((p) => `mount -o remount,rw ${p} && echo "remounted ${p}"`),
    ...files.map((f) => `(echo x >> ${f}) 2>/dev/null && echo "wrote ${f}"`),
    "true",
  ].join("; ");

interface PodRun {
  podSandboxId: string;
  containerId: string;
}

async function startProbePod(cri: CriClient, handler: string, t: HostMountTree): Promise<PodRun> {
  assert.ok(fx.ctd);
  const name = `mounts-${handler}`;
  const logDirectory = join(fx.ctd.baseDir, "pods", `default_${name}_uid-${name}`);
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name, uid: `uid-${name}`, logDirectory, privileged: true });
  const { podSandboxId } = await cri.runtime.runPodSandbox({ config, runtimeHandler: handler });
  const { containerId } = await cri.runtime.createContainer({
    podSandboxId,
    sandboxConfig: config,
    config: {
      metadata: { name: "probe" },
      image: { image: BUSYBOX_IMAGE_REF },
      command: ["sleep", "3600"],
      logPath: "probe/0.log",
      mounts: [
        { containerPath: "/tree", hostPath: t.tree, propagation: MountPropagation.PROPAGATION_HOST_TO_CONTAINER },
        { containerPath: "/ro", hostPath: t.ro, readonly: true },
        { containerPath: "/rw.txt", hostPath: t.file },
        { containerPath: "/ro.txt", hostPath: t.roFile, readonly: true },
      ],
      linux: { securityContext: { privileged: true, readonlyRootfs: true } },
    },
  });
  await cri.runtime.startContainer({ containerId });
  await waitForContainerState(cri, containerId, ContainerState.CONTAINER_RUNNING, { timeoutMs: 300_000 });
  return { podSandboxId, containerId };
}

async function removePod(cri: CriClient, pod: PodRun): Promise<void> {
  await cri.runtime.stopContainer({ containerId: pod.containerId, timeout: 0n });
  await cri.runtime.removeContainer({ containerId: pod.containerId });
  await cri.runtime.stopPodSandbox({ podSandboxId: pod.podSandboxId });
  await cri.runtime.removePodSandbox({ podSandboxId: pod.podSandboxId });
}

/** Checks both runtimes must pass: single files write through both ways, host mounts reach the pod. */
async function checkWriteThrough(cri: CriClient, containerId: string, t: HostMountTree): Promise<void> {
  await waitForContent(cri, containerId, "/rw.txt", "from-host-1\n");
  assert.equal((await sh(cri, containerId, "echo from-guest > /rw.txt")).code, 0);
  assert.equal(await readFile(t.file, "utf8"), "from-guest\n", "a container's write to a rw file mount reaches the host's file");
  await writeFile(t.file, "from-host-2\n");
  await waitForContent(cri, containerId, "/rw.txt", "from-host-2\n");
  assert.equal((await sh(cri, containerId, "echo g > /tree/sub/g.txt")).code, 0);
  assert.equal(await readFile(join(t.tree, "sub", "g.txt"), "utf8"), "g\n", "rw submounts of a volume write through");
  await mountLate(t);
  await waitForContent(cri, containerId, "/tree/late/late.txt", "late\n");
}

/** Removes the pod and checks every host mount (the late one too) and its files are still there. */
async function removeAndCheckHost(cri: CriClient, pod: PodRun, t: HostMountTree): Promise<void> {
  const before = await hostMounts(t);
  assert.ok(before.includes(join(t.tree, "late")) && before.includes(join(t.ro, "sub")), `host mounts in place: ${before.join(", ")}`);
  await removePod(cri, pod);
  assert.deepEqual(await hostMounts(t), before, "removing the pod left every host mount in place");
  for (const f of ["tree/top.txt", "tree/sub/sub.txt", "tree/late/late.txt", "rotree/sub/sub.txt"]) assert.ok(await exists(join(t.dir, f)), `${f} still on the host`);
  assert.deepEqual(await mountsUnder([fx.ctd?.baseDir ?? "/nonexistent"]), [], "no rootfs, share or netns mount left");
}

void test("kata-ts pod and host mounts (one pod, one subtest per guarantee)", { timeout: 900_000 }, async (tc) => {
  assert.ok(fx.ctd && fx.cri);
  const { ctd, cri } = fx;
  const t = await makeHostMountTree();
  let pod: PodRun | undefined;
  try {
    pod = await startProbePod(cri, "kata-ts", t);
    const { containerId } = pod;

    await tc.test("read-only volumes (every submount), read-only files and a read-only root stay read-only against guest root: remount,rw then write", async () => {
      // virtiofsd serves the share from its own mount namespace: every read-only mount is read-only there.
      const vfsd = (await processesMentioning(ctd.baseDir)).filter((p) => p.cmdline[0]?.endsWith("virtiofsd"));
      assert.ok(vfsd.length > 0, "virtiofsd runs");
      const roEntries: string[] = [];
      for (const p of vfsd) {
        const info = await readFile(`/proc/${p.pid}/mountinfo`, "utf8").catch(() => "");
        for (const line of info.split("\n")) {
          const [, , , , mp, opts] = line.split(" ");
          if (mp === undefined || opts === undefined) continue;
          if (/-rotree(\/|$)|-ro\.txt$/.test(mp) || mp.endsWith(`/containers/${containerId}/rootfs`)) {
            assert.match(opts, /^ro\b/, `${mp} in virtiofsd's mount namespace (pid ${p.pid}) is read-only`);
            roEntries.push(mp);
          }
        }
      }
      for (const want of [/-rotree$/, /-rotree\/sub$/, /-ro\.txt$/, /\/rootfs$/]) {
        assert.ok(roEntries.some((mp) => want.test(mp)), `${want} seen in virtiofsd's namespace: ${roEntries.join(", ")}`);
      }

      const attempt = await sh(cri, containerId, remountAndWrite(["/", "/ro", "/ro/sub", "/ro.txt"], ["/rootw", "/ro/w", "/ro/sub/w", "/ro.txt"]));
      for (const p of ["/", "/ro", "/ro/sub", "/ro.txt"]) assert.match(attempt.out, new RegExp(`remounted ${p}\\n`), `the guest's own remount succeeds (only the host can refuse): ${attempt.out}`);
      assert.doesNotMatch(attempt.out, /wrote/, "no write through a read-only mount after remount,rw in the guest");
      for (const f of ["rotree/w", "rotree/sub/w"]) assert.equal(await exists(join(t.dir, f)), false, `${f} not created on the host`);
      assert.equal(await readFile(t.roFile, "utf8"), "read-only\n");
    });

    await tc.test("a rw single-file mount writes through both ways; rw submounts and a mount the host adds mid-pod reach the guest", async () => {
      await checkWriteThrough(cri, containerId, t);
    });

    await tc.test("removing the pod keeps every host mount of a shared hostPath tree (submounts, and the one added mid-pod)", async () => {
      assert.ok(pod);
      await removeAndCheckHost(cri, pod, t);
      pod = undefined;
    });
  } finally {
    if (pod) await removePod(cri, pod).catch(() => undefined);
    await removeHostMountTree(t);
  }
});

void test("runc reference: single files write through, teardown keeps every host mount; privileged root can undo a plain read-only bind there", { timeout: 300_000 }, async () => {
  assert.ok(fx.ctd && fx.cri);
  const t = await makeHostMountTree();
  let pod: PodRun | undefined;
  try {
    pod = await startProbePod(fx.cri, "runc", t);
    // The same probe as on kata-ts: it does catch a write when the kernel allows one (shared kernel,
    // no recursive read-only bind), which is what kata-ts's host-side enforcement prevents.
    const attempt = await sh(fx.cri, pod.containerId, remountAndWrite(["/ro"], ["/ro/w"]));
    assert.match(attempt.out, /wrote \/ro\/w/);
    assert.equal(await exists(join(t.ro, "w")), true);
    await checkWriteThrough(fx.cri, pod.containerId, t);
    await removeAndCheckHost(fx.cri, pod, t);
    pod = undefined;
  } finally {
    if (pod) await removePod(fx.cri, pod).catch(() => undefined);
    await removeHostMountTree(t);
  }
});
