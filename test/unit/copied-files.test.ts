// The host side of copying bind-mounted files into a guest without a shared fs (copied-files.ts):
// the spec names the guest copy with the mount's options kept, /dev/shm becomes the pod's tmpfs
// volume, and what cannot be copied is refused naming the mount.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { copyBindMounts } from "../../src/sandbox/copied-files.js";
import { NoSharedFsError } from "../../src/hypervisor/no-shared-fs.js";
import { GUEST_FILES_LIMIT_BYTES, guestBlockFilesDir } from "../../src/protocol/contract/guest.js";

void test("copyBindMounts: files copied with mode and owner, options kept, /dev/shm a pod tmpfs, other mounts untouched; directories and too much refused by name", async () => {
  const dir = await mkdtemp(join(tmpdir(), "copied-files-"));
  try {
    const hosts = join(dir, "hosts");
    await writeFile(hosts, "127.0.0.1 localhost\n");
    await chmod(hosts, 0o640);
    const proc = { destination: "/proc", type: "proc", source: "proc" };
    const spec = {
      ociVersion: "1.0.2",
      mounts: [
        proc,
        { destination: "/etc/hosts", type: "bind", source: hosts, options: ["rbind", "ro"] },
        { destination: "/dev/shm", type: "bind", source: join(dir, "shm"), options: ["rbind", "nosuid", "rprivate"] },
      ],
    };
    const { spec: out, files } = await copyBindMounts("firecracker", "c1", spec);
    assert.deepEqual(out.mounts, [
      proc,
      { destination: "/etc/hosts", type: "bind", source: `${guestBlockFilesDir("c1")}/1-hosts`, options: ["rbind", "ro"] },
      { destination: "/dev/shm", type: "kata-ts.pod-tmpfs", source: "kata-ts.dev-shm", options: ["size=65536k", "nosuid"] },
    ]);
    assert.equal(files.length, 1);
    assert.deepEqual({ ...files[0], data: Buffer.from(files[0]?.data ?? []).toString() }, { name: "1-hosts", mode: 0o640, uid: process.getuid?.(), gid: process.getgid?.(), data: "127.0.0.1 localhost\n" });

    const refused = async (source: string, why: RegExp): Promise<void> => {
      const one = { ociVersion: "1.0.2", mounts: [{ destination: "/x", type: "bind", source, options: ["rbind"] }] };
      await assert.rejects(copyBindMounts("firecracker", "c1", one), (e) => e instanceof NoSharedFsError && e.message.includes(`bind mount of ${source} at /x`) && why.test(e.message));
    };
    await refused(dir, /a directory/);
    await refused(join(dir, "missing"), /missing/);
    const big = join(dir, "big");
    await writeFile(big, Buffer.alloc(GUEST_FILES_LIMIT_BYTES + 1));
    await refused(big, new RegExp(`up to ${GUEST_FILES_LIMIT_BYTES} bytes in all.*over that limit`));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
