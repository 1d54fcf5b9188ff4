// manifest.json and loadGuestAssets(): what the host reads to boot a guest.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, rm, symlink, writeFile, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadGuestAssets } from "../../src/guest/assets.js";
import { defaultConfig } from "../../src/config/index.js";
import { podAssets } from "../../src/pool/shape.js";
import { AGENT_CGROUP_PARAM } from "../../src/protocol/contract/guest.js";
import { INITRD_FILE, KERNEL_FILE, ROOTFS_FILE, guestKernelCmdline, inputsKey, kernelSourceFor } from "../../src/guest/build.js";
import { DebianCloudKernel } from "../../src/guest/kernel/debian-cloud.js";
import { ProjectKernel } from "../../src/guest/kernel/project.js";
import { listTreeSorted, parseLdd } from "../../src/guest/fsutil.js";
import { AGENT_EXIT_PREFIX, AGENT_MALLOC_TUNABLES, READAHEAD_PARAM, initramfsInit, rootInit } from "../../src/guest/init-scripts.js";
import { describeArtifact, readManifest, writeManifest, type GuestManifest } from "../../src/guest/manifest.js";
import { isKataError } from "../../src/util/errors.js";
import { BUSYBOX } from "../../src/guest/initramfs.js";
import { run } from "../../src/util/exec.js";

async function withTmp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-assets-"));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function fakeAssets(dir: string): Promise<GuestManifest> {
  await writeFile(join(dir, KERNEL_FILE), "kernel");
  await writeFile(join(dir, INITRD_FILE), "initrd!");
  await writeFile(join(dir, ROOTFS_FILE), "rootfs image");
  const manifest: GuestManifest = {
    schemaVersion: 1,
    inputsKey: "a".repeat(64),
    kernel: { source: "debian-cloud", package: "linux-image-6.1.0-56-cloud-amd64", version: "6.1.192-2", release: "6.1.0-56-cloud-amd64" },
    components: { node: "v20.20.2" },
    modules: ["kernel/drivers/virtio/virtio_ring.ko"],
    rootfsFormat: "erofs",
    kernelCmdline: guestKernelCmdline("virtio-blk"),
    agent: { path: "/usr/lib/kata-ts/agent.cjs", nodeArgs: [] },
    artifacts: {
      kernel: await describeArtifact(dir, KERNEL_FILE),
      initrd: await describeArtifact(dir, INITRD_FILE),
      rootfs: await describeArtifact(dir, ROOTFS_FILE),
    },
  };
  await writeManifest(dir, manifest);
  return manifest;
}

void test("assets: manifest records size and sha256 of each artifact", async () => {
  await withTmp(async (dir) => {
    const m = await fakeAssets(dir);
    assert.deepEqual(m.artifacts.rootfs, {
      file: ROOTFS_FILE,
      size: "rootfs image".length,
      sha256: createHash("sha256").update("rootfs image").digest("hex"),
    });
    assert.deepEqual(await readManifest(dir), m);
    assert.equal(JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")).kernel.release, "6.1.0-56-cloud-amd64");
  });
});

void test("assets: loadGuestAssets gives absolute paths, release and the guest kernel parameters", async () => {
  await withTmp(async (dir) => {
    await fakeAssets(dir);
    const a = await loadGuestAssets(dir);
    assert.equal(a.kernelPath, join(dir, KERNEL_FILE));
    assert.equal(a.initrdPath, join(dir, INITRD_FILE));
    assert.equal(a.rootfsPath, join(dir, ROOTFS_FILE));
    assert.equal(a.rootfsFormat, "erofs");
    assert.equal(a.kernelRelease, "6.1.0-56-cloud-amd64");
    assert.deepEqual(a.kernelCmdline, ["root=/dev/vda", "rootfstype=erofs", "ro", "init=/sbin/kata-ts-init", "panic=-1", "quiet", "random.trust_cpu=on", "dhash_entries=8192", "ihash_entries=4096", "swiotlb=noforce"]);
    assert.ok(!a.kernelCmdline.some((p) => p.startsWith("console=")), "the VMM owns the console parameter");
  });
});

void test("assets: a pod's kernel parameters: the agent's own cgroup only when its memory may be reclaimed, the operator's kernel_params last", async () => {
  await withTmp(async (dir) => {
    await fakeAssets(dir);
    const saved = process.env.KATA_TS_ASSETS_DIR;
    process.env.KATA_TS_ASSETS_DIR = dir;
    try {
      const config = defaultConfig();
      config.hypervisor.qemu.kernel_params = ["loglevel=1"];
      const plain = await podAssets(config);
      assert.ok(!plain.kernelCmdline.includes(AGENT_CGROUP_PARAM), "by default the memory controller stays off at boot");
      assert.equal(plain.kernelCmdline.at(-1), "loglevel=1");
      config.hypervisor.qemu.tcg_idle_reclaim_agent = true;
      const reclaiming = await podAssets(config);
      assert.deepEqual(reclaiming.kernelCmdline.slice(-2), [AGENT_CGROUP_PARAM, "loglevel=1"]);
      config.runtime.hypervisor = "firecracker";
      assert.ok(!(await podAssets(config)).kernelCmdline.includes(AGENT_CGROUP_PARAM), "only QEMU's trimmer asks for a reclaim");
    } finally {
      if (saved === undefined) delete process.env.KATA_TS_ASSETS_DIR;
      else process.env.KATA_TS_ASSETS_DIR = saved;
    }
  });
});

void test("assets: no manifest -> NOT_FOUND that says to run build-assets", async () => {
  await withTmp(async (dir) => {
    await assert.rejects(loadGuestAssets(join(dir, "nope")), (e: unknown) => isKataError(e, "NOT_FOUND") && /run: kata-ts build-assets/.test(e.message));
  });
});

void test("assets: a missing artifact -> NOT_FOUND naming the file", async () => {
  await withTmp(async (dir) => {
    await fakeAssets(dir);
    await rm(join(dir, ROOTFS_FILE));
    await assert.rejects(
      loadGuestAssets(dir),
      (e: unknown) => isKataError(e, "NOT_FOUND") && e.message.includes(join(dir, ROOTFS_FILE)) && /build-assets/.test(e.message),
    );
  });
});

void test("assets: a damaged or foreign manifest -> FAILED_PRECONDITION", async () => {
  await withTmp(async (dir) => {
    await writeFile(join(dir, "manifest.json"), "{not json");
    await assert.rejects(loadGuestAssets(dir), (e: unknown) => isKataError(e, "FAILED_PRECONDITION"));
    await writeFile(join(dir, "manifest.json"), JSON.stringify({ schemaVersion: 99 }));
    await assert.rejects(loadGuestAssets(dir), (e: unknown) => isKataError(e, "FAILED_PRECONDITION") && /build-assets/.test(e.message));
  });
});

void test("assets: the inputs key changes with every input", () => {
  const base = { kernel: { source: "debian-cloud" as const, package: "p", version: "1" }, components: { node: "v20" }, agentSha256: "x" };
  const k = inputsKey(base);
  assert.match(k, /^[0-9a-f]{64}$/);
  assert.equal(inputsKey(base), k, "deterministic");
  assert.notEqual(inputsKey({ ...base, agentSha256: "y" }), k);
  assert.notEqual(inputsKey({ ...base, kernel: { ...base.kernel, version: "2" } }), k);
  assert.notEqual(inputsKey({ ...base, components: { node: "v22" } }), k);
  const project = { ...base, kernel: { source: "project" as const, package: "linux-source-6.1", version: "1", configSha256: "c1" } };
  assert.notEqual(inputsKey(project), k, "kernel source");
  assert.notEqual(inputsKey({ ...project, kernel: { ...project.kernel, configSha256: "c2" } }), inputsKey(project), "kernel configuration");
});

void test("assets: [guest] kernel picks the kernel source by name, each explicitly", () => {
  assert.ok(kernelSourceFor("project") instanceof ProjectKernel);
  assert.ok(kernelSourceFor("debian-cloud") instanceof DebianCloudKernel);
});

void test("assets: kernel parameters for a virtio-pmem root (DAX) and a virtio-blk root; quiet console", () => {
  assert.ok(guestKernelCmdline("virtio-blk").includes("quiet"));
  assert.deepEqual(guestKernelCmdline("virtio-pmem").slice(0, 4), ["root=/dev/pmem0", "rootfstype=erofs", "rootflags=dax=always", "rootwait"]);
  assert.deepEqual(guestKernelCmdline("virtio-blk").slice(0, 2), ["root=/dev/vda", "rootfstype=erofs"]);
  // acpi=off is not the image's: the VMM adds it where the machine and the kernel allow
  // (q35 under TCG, machine.ts tcgDefaultAcpiOff; microvm needs ACPI for its devices).
  assert.ok(!guestKernelCmdline("virtio-blk").includes("acpi=off"));
  assert.ok(!guestKernelCmdline("virtio-pmem").includes("acpi=off"));
});

void test("assets: the image's busybox linux64 -R starts a program with ADDR_NO_RANDOMIZE and the plain Linux personality (what the init gives the agent under TCG)", async () => {
  // The image installs the host's busybox-static (src/guest/initramfs.ts BUSYBOX); 0x0040000 is ADDR_NO_RANDOMIZE.
  const { stdout } = await run(BUSYBOX, ["linux64", "-R", "cat", "/proc/self/personality"]);
  assert.equal(stdout.trim(), "00040000");
});

void test("assets: init scripts carry the contract strings", () => {
  const stage2 = rootInit({ nodeArgs: ["--max-semi-space-size=1"] });
  assert.ok(stage2.includes(`echo "${AGENT_EXIT_PREFIX} $status"`));
  assert.equal(AGENT_EXIT_PREFIX, "kata-ts-init: agent exited with status");
  assert.ok(stage2.includes("mount -t cgroup2"));
  // It ends the VM by powering off with ACPI, else (acpi=off) by a reset, after the agent's exit line.
  assert.ok(stage2.includes("end_vm() {\n  [ -d /sys/firmware/acpi ] && poweroff -f\n  reboot -f\n}"));
  assert.ok(stage2.trimEnd().endsWith(`echo "${AGENT_EXIT_PREFIX} $status" >/dev/console\nend_vm`));
  assert.ok(stage2.includes("$norand node '--max-semi-space-size=1' /usr/lib/kata-ts/agent.cjs"));
  // The agent's malloc keeps a fixed mmap threshold, from the snapshot and from the script alike.
  assert.equal(stage2.split(`GLIBC_TUNABLES=${AGENT_MALLOC_TUNABLES} $norand node `).length - 1, 2);
  // Under TCG only, the agent (and the crun it runs) starts without address-space randomization.
  assert.ok(stage2.includes(`grep -q '^model name.*TCG' /proc/cpuinfo && norand="busybox linux64 -R"`));
  // kata_ts.readahead_kb=N sets the root disk's read-ahead before node starts, after the snapshot was read whole.
  const readahead = stage2.slice(stage2.indexOf(`${READAHEAD_PARAM}=*)`));
  assert.ok(readahead.indexOf("cat /usr/lib/kata-ts/agent.snapshot >/dev/null") < readahead.indexOf(">/sys/block/vda/queue/read_ahead_kb"));
  assert.ok(stage2.indexOf(`${READAHEAD_PARAM}=*)`) < stage2.indexOf("start_agent $mode"));
  // The agent's own cgroup, and the memory controller at boot, only with kata_ts.agent_cgroup=1.
  const gate = stage2.slice(stage2.indexOf(`*" ${AGENT_CGROUP_PARAM} "*)`));
  assert.ok(gate.indexOf("echo +memory >/sys/fs/cgroup/cgroup.subtree_control") < gate.indexOf("esac"));
  assert.equal(stage2.split("cgroup.subtree_control").length - 1, 1, "nowhere else");
  const stage1 = initramfsInit("6.1.0-56-cloud-amd64");
  assert.ok(stage1.includes("/lib/modules/6.1.0-56-cloud-amd64/modules.load"));
  assert.ok(stage1.includes("exec switch_root /newroot"));
});

void test("assets: ldd output parsing and sorted tree listing", async () => {
  const ldd = `\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n`;
  assert.deepEqual(parseLdd(ldd), ["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]);
  await withTmp(async (dir) => {
    await mkdir(join(dir, "b", "c"), { recursive: true });
    await writeFile(join(dir, "a"), "");
    await writeFile(join(dir, "b", "z"), "");
    await symlink("a", join(dir, "B"));
    assert.deepEqual(await listTreeSorted(dir), [".", "./B", "./a", "./b", "./b/c", "./b/z"]);
  });
});
