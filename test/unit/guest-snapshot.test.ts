// The snapshot build VM's command line and console protocol (the VM itself runs in build-assets).
import { test } from "node:test";
import assert from "node:assert/strict";
import { SNAPSHOT_BUILD_PARAM, SNAPSHOT_BYTES_PREFIX, rootInit } from "../../src/guest/init-scripts.js";
import { hostTscKhz, parseSnapshotBytes, snapshotVmArgs } from "../../src/guest/snapshot.js";

const opts = { kernelPath: "/a/vmlinux", initrdPath: "/a/initrd.cpio", rootfsPath: "/a/rootfs.erofs", kernelCmdline: ["root=/dev/vda", "ro"], workDir: "/w" };

void test("snapshot: the build VM boots the image read-only with a writable second disk", () => {
  const args = snapshotVmArgs(opts, "/w/console.log", "/w/out.img", 2_100_000);
  const append = args[args.indexOf("-append") + 1] ?? "";
  assert.deepEqual(append.split(" "), ["console=ttyS0", "root=/dev/vda", "ro", SNAPSHOT_BUILD_PARAM, "tsc_early_khz=2100000"]);
  assert.ok(args.includes("id=root,file=/a/rootfs.erofs,format=raw,if=none,readonly=on"));
  assert.ok(args.includes("id=out,file=/w/out.img,format=raw,if=none"));
  assert.ok(args.indexOf("id=root,file=/a/rootfs.erofs,format=raw,if=none,readonly=on") < args.indexOf("id=out,file=/w/out.img,format=raw,if=none"), "rootfs is vda, output vdb");
  assert.ok(!snapshotVmArgs(opts, "c", "o", undefined).some((a) => a.includes("tsc_early_khz")));
});

void test("snapshot: with a virtio-pmem root and no initrd, the output disk is the only virtio-blk disk", () => {
  const pmemOpts = { kernelPath: "/a/vmlinux", rootfsPath: "/a/rootfs.erofs", rootfsDevice: "virtio-pmem" as const, kernelCmdline: ["root=/dev/pmem0"], workDir: "/w" };
  const args = snapshotVmArgs(pmemOpts, "/w/console.log", "/w/out.img", undefined, 4 * 1048576);
  assert.ok(!args.includes("-initrd"));
  assert.ok(args.some((a) => a.startsWith("q35,")), "a pmem root needs a machine that maps memory devices");
  assert.ok(args.includes("memory-backend-file,id=root-mem,mem-path=/a/rootfs.erofs,size=4194304,share=off,readonly=on"));
  assert.ok(args.includes("512M,slots=1,maxmem=516M"));
  assert.equal(args.filter((a) => a.startsWith("virtio-blk-pci")).length, 1);
  const init = rootInit({ nodeArgs: [] });
  assert.ok(init.includes("out=/dev/vdb; [ -b $out ] || out=/dev/vda"), "the guest writes to vda when it is the only disk");
});

void test("snapshot: the size line is read from the console, anything else is no snapshot", () => {
  assert.equal(parseSnapshotBytes(`[ 1.0] boot\n${SNAPSHOT_BYTES_PREFIX} 5406126\n[ 2.0] reboot: Power down\n`), 5406126);
  assert.equal(parseSnapshotBytes("[ 1.0] boot\nkata-ts-init: agent exited with status 1\n"), undefined);
  assert.equal(parseSnapshotBytes(`${SNAPSHOT_BYTES_PREFIX} 0\n`), undefined);
  assert.equal(parseSnapshotBytes(`${SNAPSHOT_BYTES_PREFIX} x\n`), undefined);
});

void test("snapshot: guest init builds on request and falls back to the script when node rejects the snapshot", () => {
  const init = rootInit({ nodeArgs: [] });
  assert.ok(init.includes(`*" ${SNAPSHOT_BUILD_PARAM} "*)`));
  assert.ok(init.includes("--build-snapshot /usr/lib/kata-ts/agent.cjs"));
  assert.ok(init.includes('[ $mode = snapshot ] && [ $status = 14 ]'));
  assert.ok(init.includes("start_agent script"));
});

void test("snapshot: host TSC frequency is a plausible kHz figure when known", async () => {
  const khz = await hostTscKhz();
  if (khz !== undefined) assert.ok(khz > 100_000 && khz < 10_000_000, `${khz} kHz`);
});
