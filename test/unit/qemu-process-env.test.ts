// What QEMU is started with besides its argv: its environment (GLib's slice allocator off) and a
// private copy of an ELF kernel, emptied and unlinked once QEMU has loaded it (QEMU keeps the file
// mapped for a reset kata-ts never does: docs/density.md "QEMU's file mappings").
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { qemuEnv } from "../../src/hypervisor/qemu/env.js";
import { isElfFile, privateKernelCopy, releaseKernelCopy } from "../../src/hypervisor/qemu/kernel-copy.js";

void test("qemu env: the host's environment plus G_SLICE=always-malloc; a value the caller set wins", () => {
  const env = qemuEnv({ PATH: "/usr/bin", HOME: "/root" });
  assert.deepEqual(env, { PATH: "/usr/bin", HOME: "/root", G_SLICE: "always-malloc" });
  assert.equal(qemuEnv({ G_SLICE: "debug-blocks" }).G_SLICE, "debug-blocks", "an operator's or a bench's own setting is kept");
  const base = { PATH: "/bin" };
  qemuEnv(base);
  assert.deepEqual(base, { PATH: "/bin" }, "the caller's environment is not changed");
});

void test("kernel copy: an ELF kernel is copied into the state dir, then emptied and unlinked; a bzImage is not copied", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-kernel-copy-"));
  try {
    const elf = join(dir, "vmlinux");
    const body = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]), Buffer.alloc(3 * 4096, 0xab)]);
    await writeFile(elf, body);
    const state = join(dir, "vm");
    await mkdir(state);
    const copy = await privateKernelCopy(elf, state);
    assert.ok(copy !== undefined);
    assert.equal(copy.path, join(state, "vmlinux"));
    assert.equal(copy.sizeBytes, body.length);
    assert.deepEqual(await readFile(copy.path), body, "QEMU boots an identical kernel");
    await releaseKernelCopy(copy);
    assert.deepEqual(await readdir(state), [], "the copy is gone from the state dir");
    assert.deepEqual(await readFile(elf), body, "the shared kernel is untouched");

    const bz = join(dir, "bzImage");
    await writeFile(bz, Buffer.concat([Buffer.alloc(0x202), Buffer.from("HdrS")]));
    assert.equal(await isElfFile(bz), false);
    assert.equal(await privateKernelCopy(bz, state), undefined, "QEMU reads a bzImage into its heap: nothing to release");
    assert.deepEqual(await readdir(state), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
