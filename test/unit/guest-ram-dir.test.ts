// The huge-page tmpfs for guest RAM: which mounts count (mountinfo parsing) and what happens when
// something else is mounted where kata-ts would mount it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureGuestRamDir, isHugeTmpfs, mountsAt } from "../../src/hypervisor/qemu/guest-ram-dir.js";
import { run } from "../../src/util/exec.js";
import { isKataError } from "../../src/util/errors.js";

const mountinfo = [
  "22 1 0:21 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,size=1000k,mode=755",
  "90 22 0:44 / /run/kata-ts-guest-ram rw,relatime - tmpfs kata-ts-guest-ram rw,size=0k,nr_inodes=0,mode=700,huge=within_size",
  "91 22 0:45 / /run/with\\040space rw - tmpfs x rw,huge=always",
  "92 22 0:46 / /run/plain rw - tmpfs x rw,size=64k",
  "93 22 0:47 / /run/ext rw - ext4 /dev/vda rw,huge=always",
  "",
].join("\n");

void test("guest RAM dir: mountinfo lines at exactly the dir, with their file system and super options", () => {
  const m = mountsAt(mountinfo, "/run/kata-ts-guest-ram");
  assert.equal(m.length, 1);
  assert.equal(m[0]!.fsType, "tmpfs");
  assert.ok(isHugeTmpfs(m[0]!));
  assert.equal(mountsAt(mountinfo, "/run/kata-ts").length, 0, "a prefix is not the dir");
  assert.ok(isHugeTmpfs(mountsAt(mountinfo, "/run/with space")[0]!), "octal escapes in the mount point are decoded");
  assert.ok(!isHugeTmpfs(mountsAt(mountinfo, "/run/plain")[0]!), "a tmpfs without huge= gets 4 KiB pages");
  assert.ok(!isHugeTmpfs(mountsAt(mountinfo, "/run/ext")[0]!), "only tmpfs");
});

void test("guest RAM dir: mounted once with huge=within_size; a dir with another mount on it is refused, naming it and the switch", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kts-guest-ram-"));
  const ram = join(dir, "ram");
  const other = join(dir, "other");
  try {
    await ensureGuestRamDir(ram);
    await ensureGuestRamDir(ram); // memoized: no second mount
    const info = await import("node:fs/promises").then((fs) => fs.readFile("/proc/self/mountinfo", "utf8"));
    const at = mountsAt(info, ram);
    assert.equal(at.length, 1, "one mount");
    assert.ok(isHugeTmpfs(at[0]!), at[0]!.superOptions.join(","));
    assert.ok(at[0]!.superOptions.includes("mode=700"));
    await import("node:fs/promises").then((fs) => fs.mkdir(other));
    await run("mount", ["-t", "tmpfs", "-o", "size=64k", "not-huge", other]);
    await assert.rejects(ensureGuestRamDir(other), (e: unknown) => isKataError(e, "FAILED_PRECONDITION") && /huge=within_size/.test((e as Error).message) && /huge_guest_ram = false/.test((e as Error).message));
  } finally {
    await run("umount", [ram], { allowNonZero: true });
    await run("umount", [other], { allowNonZero: true });
    await rm(dir, { recursive: true, force: true });
  }
});
