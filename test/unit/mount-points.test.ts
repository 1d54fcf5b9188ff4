import { test } from "node:test";
import assert from "node:assert/strict";
import { lstat, mkdir, mkdtemp, readdir, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createMountPoint } from "../../src/sandbox/mount-points.js";

void test("mount points for a read-only root: dirs and files made inside the root, never through a symlink", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kts-mp-"));
  try {
    const root = join(dir, "root");
    const outside = join(dir, "outside");
    await mkdir(root);
    await mkdir(outside);
    await symlink(outside, join(root, "escape")); // an image may hold any symlink
    await symlink(join(outside, "f"), join(root, "file-link"));

    await createMountPoint(root, { destination: "/a/b/../c", isFile: false });
    await createMountPoint(root, { destination: "/etc/hosts", isFile: true });
    await createMountPoint(root, { destination: "/escape/x", isFile: false });
    await createMountPoint(root, { destination: "/escape/y", isFile: true });
    await createMountPoint(root, { destination: "/file-link", isFile: true });
    await createMountPoint(root, { destination: "/../../up", isFile: false });

    assert.ok((await lstat(join(root, "a", "c"))).isDirectory());
    assert.ok((await lstat(join(root, "etc", "hosts"))).isFile());
    assert.ok((await lstat(join(root, "up"))).isDirectory(), "'..' stays inside the root");
    assert.deepEqual(await readdir(outside), [], "nothing created through a symlink");
    assert.ok((await lstat(join(root, "file-link"))).isSymbolicLink());
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
