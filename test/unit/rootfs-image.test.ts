// The block image of a container rootfs (for Firecracker, which has no virtio-fs): the real
// mkfs.erofs builds it from a directory, and the real fsck.erofs checks it and extracts it back
// (no mount needed), so what the guest will see is compared with what the directory held.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { chown, lstat, mkdir, mkdtemp, readFile, readlink, rm, stat, symlink, writeFile } from "node:fs/promises";
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

void test("rootfs image: files, modes, owners and symlinks of the directory are in the erofs image, which fsck.erofs accepts", async () => {
  const rootfs = join(dir, "rootfs");
  await mkdir(join(rootfs, "bin"), { recursive: true });
  await mkdir(join(rootfs, "etc"), { recursive: true });
  await writeFile(join(rootfs, "etc", "hostname"), "pod-a\n");
  await writeFile(join(rootfs, "bin", "app"), "#!/bin/sh\necho hi\n", { mode: 0o755 });
  await chown(join(rootfs, "bin", "app"), 1000, 1000);
  await symlink("/bin/app", join(rootfs, "bin", "sh"));
  const big = Buffer.alloc(3 * 1024 * 1024, 7);
  await writeFile(join(rootfs, "big"), big);
  const image = await buildRootfsImage(rootfs, join(dir, "rootfs.erofs"));
  assert.equal((await stat(image.path)).size, image.sizeBytes);
  assert.ok(image.sizeBytes >= big.length && image.sizeBytes % 4096 === 0, `a whole number of 4 KiB blocks holding the files: ${image.sizeBytes}`);
  const out = join(dir, "extracted");
  await run("fsck.erofs", [`--extract=${out}`, "--preserve", image.path], { timeoutMs: 60_000 });
  assert.equal(await readFile(join(out, "etc", "hostname"), "utf8"), "pod-a\n");
  const app = await lstat(join(out, "bin", "app"));
  assert.equal(app.mode & 0o7777, 0o755);
  assert.deepEqual([app.uid, app.gid], [1000, 1000]);
  assert.equal(await readlink(join(out, "bin", "sh")), "/bin/app");
  assert.ok((await readFile(join(out, "big"))).equals(big));
});

void test("rootfs image: a missing rootfs directory is NOT_FOUND and an existing image is never overwritten", async () => {
  await assert.rejects(buildRootfsImage(join(dir, "nope"), join(dir, "x.erofs")), (e) => isKataError(e, "NOT_FOUND"));
  const rootfs = join(dir, "r2");
  await mkdir(rootfs);
  await writeFile(join(dir, "taken.erofs"), "someone else's");
  await assert.rejects(buildRootfsImage(rootfs, join(dir, "taken.erofs")), (e) => isKataError(e, "ALREADY_EXISTS"));
  assert.equal(await readFile(join(dir, "taken.erofs"), "utf8"), "someone else's");
});
