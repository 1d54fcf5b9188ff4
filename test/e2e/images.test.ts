// The locally built images: reproducible archives, busybox applets as real hard links, and a
// pause process that exits 0 on SIGTERM (a graceful stop, not the SIGKILL fallback).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ContainerState, podSandboxConfig, waitForContainerState } from "../../src/cri/pod.js";
import { ensureTestImages, PAUSE_IMAGE_REF } from "../../src/images/test-images.js";
import { useCriFixture } from "../harness/cri-fixture.js";
import { BUSYBOX_IMAGE_REF } from "../harness/images.js";

const fx = useCriFixture({ kataTs: false });

void test("two builds of the images give the same digests", { timeout: 120_000 }, async () => {
  const dirs = [await mkdtemp(join(tmpdir(), "kts-img-")), await mkdtemp(join(tmpdir(), "kts-img-"))];
  try {
    const [a, b] = [await ensureTestImages(dirs[0]), await ensureTestImages(dirs[1])];
    assert.equal(a.busybox.manifestDigest, b.busybox.manifestDigest);
    assert.equal(a.pause.manifestDigest, b.pause.manifestDigest);
    assert.deepEqual(await ensureTestImages(dirs[0]), a, "a second call reuses the cache");
  } finally {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  }
});

void test("busybox applets are hard links, /etc/passwd resolves users, pause stops on SIGTERM", { timeout: 180_000 }, async () => {
  assert.ok(fx.ctd && fx.cri);
  const logDirectory = join(fx.ctd.baseDir, "pods", "default_img_uid");
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name: "img", logDirectory });
  const { podSandboxId } = await fx.cri.runtime.runPodSandbox({ config, runtimeHandler: "runc" });
  const start = async (name: string, image: string, command?: string[]) => {
    const { containerId } = await fx.cri!.runtime.createContainer({
      podSandboxId,
      sandboxConfig: config,
      config: { metadata: { name }, image: { image }, ...(command ? { command } : {}), logPath: `${name}.log` },
    });
    await fx.cri!.runtime.startContainer({ containerId });
    await waitForContainerState(fx.cri!, containerId, ContainerState.CONTAINER_RUNNING, { timeoutMs: 60_000 });
    return containerId;
  };
  const bb = await start("bb", BUSYBOX_IMAGE_REF, ["sleep", "3600"]);
  const links = await fx.cri.runtime.execSync({ containerId: bb, cmd: ["stat", "-c", "%h %i", "/bin/sh", "/bin/ls", "/usr/bin/env"], timeout: 30n });
  const lines = Buffer.from(links.stdout).toString().trim().split("\n");
  assert.equal(new Set(lines).size, 1, `one inode for all applets: ${lines.join(", ")}`);
  assert.ok(Number(lines[0]?.split(" ")[0]) > 100, "every applet is a link to /bin/busybox");
  const who = await fx.cri.runtime.execSync({ containerId: bb, cmd: ["id", "nobody"], timeout: 30n });
  assert.match(Buffer.from(who.stdout).toString(), /^uid=65534\(nobody\) gid=65534\(nogroup\)/);

  // The pause image as a plain container: a stop with a grace period ends it by SIGTERM, exit 0.
  const pause = await start("pause", PAUSE_IMAGE_REF);
  await fx.cri.runtime.stopContainer({ containerId: pause, timeout: 30n });
  const stopped = await waitForContainerState(fx.cri, pause, ContainerState.CONTAINER_EXITED, { timeoutMs: 30_000 });
  assert.equal(stopped.exitCode, 0);

  await fx.cri.runtime.stopPodSandbox({ podSandboxId });
  await fx.cri.runtime.removePodSandbox({ podSandboxId });
});
