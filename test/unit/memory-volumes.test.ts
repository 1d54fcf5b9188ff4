// Memory-backed binds become guest tmpfs volumes (src/sandbox/memory-volumes.ts): the pod's
// /dev/shm (the CRI plugin's per-sandbox tmpfs) and memory-backed emptyDirs, on real tmpfs mounts,
// so their pages are the VM's memory, charged to the container in the guest, not host pages
// charged to virtiofsd. A bind of anything else is left to virtio-fs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEV_SHM_VOLUME, guestMemoryVolumes, POD_TMPFS_TYPE } from "../../src/sandbox/memory-volumes.js";
import { run } from "../../src/util/exec.js";

void test("the CRI plugin's /dev/shm bind becomes the pod's guest tmpfs of the host tmpfs's size; other binds stay", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kts-memvol-"));
  const shm = join(dir, "sandboxes", "abc", "shm");
  const plain = join(dir, "plain");
  await mkdir(shm, { recursive: true });
  await mkdir(plain);
  await run("mount", ["-t", "tmpfs", "-o", "mode=1777,size=65536k", "shm", shm], { timeoutMs: 10_000 });
  try {
    const spec = await guestMemoryVolumes({
      ociVersion: "1.0.2",
      mounts: [
        { destination: "/dev/shm", type: "bind", source: shm, options: ["rbind", "rprivate", "rw"] },
        { destination: "/data", type: "bind", source: plain, options: ["rbind", "rw"] },
        { destination: "/proc", type: "proc", source: "proc" },
      ],
    });
    assert.deepEqual(spec.mounts?.[0], { destination: "/dev/shm", type: POD_TMPFS_TYPE, source: DEV_SHM_VOLUME, options: ["size=65536k", "rw"] });
    assert.deepEqual(spec.mounts?.[1], { destination: "/data", type: "bind", source: plain, options: ["rbind", "rw"] }, "a directory that is no tmpfs stays shared");
    assert.equal(spec.mounts?.[2]?.type, "proc");
    // Host IPC pods get no tmpfs from the CRI plugin: a /dev/shm bind of a plain directory stays.
    const hostIpc = await guestMemoryVolumes({ ociVersion: "1.0.2", mounts: [{ destination: "/dev/shm", type: "bind", source: plain, options: ["rbind"] }] });
    assert.equal(hostIpc.mounts?.[0]?.type, "bind");
  } finally {
    await run("umount", [shm], { timeoutMs: 10_000 });
    await rm(dir, { recursive: true, force: true });
  }
});
