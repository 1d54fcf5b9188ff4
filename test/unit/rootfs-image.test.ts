// The block image of a container rootfs (for Firecracker, which has no virtio-fs): the real
// mkfs.ext4 builds it from a directory, and the real debugfs reads it back (no mount needed).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { chown, mkdir, mkdtemp, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildRootfsImage } from "../../src/sandbox/rootfs-image.js";
import { run } from "../../src/util/exec.js";
import { isKataError } from "../../src/util/errors.js";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "kata-ts-rootfsimg-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const debugfs = async (image: string, cmd: string): Promise<string> => (await run("debugfs", ["-R", cmd, image], { timeoutMs: 30_000 })).stdout;

void test("rootfs image: files, modes, owners and symlinks of the directory are in the ext4 image; the file is sparse", async () => {
  const rootfs = join(dir, "rootfs");
  await mkdir(join(rootfs, "bin"), { recursive: true });
  await mkdir(join(rootfs, "etc"), { recursive: true });
  await writeFile(join(rootfs, "etc", "hostname"), "pod-a\n");
  await writeFile(join(rootfs, "bin", "app"), "#!/bin/sh\necho hi\n", { mode: 0o755 });
  await chown(join(rootfs, "bin", "app"), 1000, 1000);
  await symlink("/bin/app", join(rootfs, "bin", "sh"));
  await writeFile(join(rootfs, "big"), Buffer.alloc(3 * 1024 * 1024, 7));
  const image = await buildRootfsImage(rootfs, join(dir, "rootfs.ext4"));
  assert.equal((await debugfs(image.path, "cat /etc/hostname")).trim(), "pod-a");
  const app = await debugfs(image.path, "stat /bin/app");
  assert.match(app, /Mode: {2}0755/);
  assert.match(app, /User: {2}1000 {3}Group: {2}1000/);
  assert.match(await debugfs(image.path, "stat /bin/sh"), /Fast link dest: "\/bin\/app"/);
  assert.ok(image.sizeBytes >= 3 * 1024 * 1024 + 16 * 1024 * 1024, "room for the files and headroom");
  const st = await stat(image.path);
  assert.equal(st.size, image.sizeBytes);
  assert.ok(st.blocks * 512 < st.size, "sparse: unused blocks take no disk");
});

void test("rootfs image: a missing rootfs directory is NOT_FOUND and an existing image is never overwritten", async () => {
  await assert.rejects(buildRootfsImage(join(dir, "nope"), join(dir, "x.ext4")), (e) => isKataError(e, "NOT_FOUND"));
  const rootfs = join(dir, "r2");
  await mkdir(rootfs);
  await writeFile(join(dir, "taken.ext4"), "someone else's");
  await assert.rejects(buildRootfsImage(rootfs, join(dir, "taken.ext4")), (e) => isKataError(e, "ALREADY_EXISTS"));
});
