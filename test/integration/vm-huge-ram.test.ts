// Guest RAM in huge pages ([hypervisor.qemu] huge_guest_ram): a pod-like VM (with a virtio-fs share,
// so its RAM is shared with virtiofsd) gets its RAM from an unlinked file on the huge-page tmpfs,
// mapped in 2 MiB pages, and on every way a VM ends (stop, a killed QEMU, a QEMU that fails after
// creating its RAM) the tmpfs is empty again: no file, no process holding one, no bytes in use.
// The tmpfs here is the test's own, mounted with a size so that statfs shows what it holds (kata-ts
// mounts its own without a cap; test/unit/guest-ram-dir.test.ts checks that mount).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { copyFile, mkdir, readdir, readFile, readlink, statfs } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { GuestAssets } from "../../src/guest/assets.js";
import { QemuHypervisor } from "../../src/hypervisor/qemu/index.js";
import type { Vm, VmConfig } from "../../src/hypervisor/types.js";
import { SHARED_FS_TAG } from "../../src/protocol/contract/guest.js";
import { Virtiofsd } from "../../src/sandbox/virtiofsd.js";
import { run } from "../../src/util/exec.js";
import { assets, busyboxPid1Cmdline, cleanupRoot, processesMentioning, tempRoot, vmConfig } from "./vm-support.js";

const deadlineMs = 120_000;
let root: string;
let ramDir: string;
let guest: GuestAssets;
let hv: QemuHypervisor;

before(async () => {
  guest = await assets();
  root = await tempRoot("vm-huge-ram");
  ramDir = join(root, "ram");
  await mkdir(ramDir);
  await run("mount", ["-t", "tmpfs", "-o", "huge=within_size,size=1G,mode=0700", "kata-ts-test-ram", ramDir]);
  hv = await QemuHypervisor.open({ hugeGuestRam: true, guestRamDir: ramDir });
});

after(async () => {
  const leftovers = await processesMentioning(root);
  await run("umount", ["-l", ramDir], { allowNonZero: true });
  await cleanupRoot(root);
  assert.deepEqual(leftovers, [], "no QEMU or virtiofsd may outlive the tests");
});

/** Bytes the test's tmpfs holds. */
async function usedBytes(): Promise<number> {
  const s = await statfs(ramDir);
  return (s.blocks - s.bfree) * s.bsize;
}

/** Pids of processes that map or hold open a file of the tmpfs (QEMU and virtiofsd while a VM runs). */
async function holders(): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const maps = await readFile(`/proc/${entry}/maps`, "utf8").catch(() => "");
    let holds = maps.includes(`${ramDir}/`);
    if (!holds) {
      for (const fd of await readdir(`/proc/${entry}/fd`).catch(() => [] as string[])) {
        if ((await readlink(`/proc/${entry}/fd/${fd}`).catch(() => "")).startsWith(`${ramDir}/`)) holds = true;
      }
    }
    if (holds) pids.push(Number(entry));
  }
  return pids;
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${deadlineMs} ms`);
    await sleep(100);
  }
}

/** A VM as a pod's boots (with a virtio-fs share), its PID 1 busybox usleep: the kernel boots, then the guest idles. */
async function podLikeVm(id: string, overrides: Partial<VmConfig> = {}): Promise<{ vm: Vm; vfs: Virtiofsd }> {
  const share = join(root, `${id}-share`);
  await mkdir(share);
  const vfs = await Virtiofsd.start({ sharedDir: share, socketPath: join(root, `${id}-vfs.sock`), logPath: join(root, `${id}-virtiofsd.log`) });
  const config = vmConfig(guest, root, id, {
    kernelCmdline: busyboxPid1Cmdline(guest, "usleep", ["100000000"]),
    sharedFs: { socketPath: join(root, `${id}-vfs.sock`), tag: SHARED_FS_TAG },
    ...overrides,
  });
  try {
    return { vm: await hv.create(config), vfs };
  } catch (err) {
    await vfs.stop();
    throw err;
  }
}

async function assertEmpty(when: string): Promise<void> {
  assert.deepEqual(await readdir(ramDir), [], `${when}: no file in the tmpfs`);
  assert.deepEqual(await holders(), [], `${when}: no process maps or holds a file of it`);
  await until(`${when}: the tmpfs gives its pages back`, async () => (await usedBytes()) === 0);
}

void test("huge guest RAM: QEMU maps an unlinked file of the tmpfs in 2 MiB pages, shared with virtiofsd; stop leaves the tmpfs empty", async () => {
  const { vm, vfs } = await podLikeVm("stop");
  try {
    await vm.start();
    const pid = vm.pid ?? 0;
    await until("the guest kernel runs its init", async () => /as init process/.test(await readFile(vm.consoleLogPath, "utf8").catch(() => "")));
    const smaps = await readFile(`/proc/${pid}/smaps`, "utf8");
    const block = smaps.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/).find((b) => b.split("\n")[0]!.includes(`${ramDir}/qemu_back_mem.`));
    assert.ok(block !== undefined, "guest RAM is a file of the tmpfs");
    assert.match(block.split("\n")[0]!, /\(deleted\)$/, "unlinked as soon as QEMU created it");
    assert.equal(Number(/^Size:\s+(\d+) kB/m.exec(block)?.[1]), 512 * 1024);
    const pmdKiB = Number(/^ShmemPmdMapped:\s+(\d+) kB/m.exec(block)?.[1]);
    assert.ok(pmdKiB >= 4096 && pmdKiB % 2048 === 0, `mapped in 2 MiB pages (ShmemPmdMapped ${pmdKiB} kB)`);
    assert.deepEqual(await readdir(ramDir), [], "no name in the tmpfs while it runs");
    assert.ok((await usedBytes()) >= pmdKiB * 1024, "the tmpfs holds the guest's pages");
    // virtiofsd serves from a child in its own namespaces: the other holder is that process.
    const others = (await holders()).filter((p) => p !== pid);
    assert.ok((await holders()).includes(pid), "QEMU maps it");
    assert.equal(others.length, 1, `one more holder: ${others.join(",")}`);
    assert.match(await readFile(`/proc/${others[0]}/cmdline`, "utf8"), /virtiofsd/, "virtiofsd maps it (vhost-user)");
  } finally {
    await vm.stop({ timeoutMs: 5000 });
    await vfs.stop();
  }
  await assertEmpty("after stop");
});

void test("huge guest RAM: a QEMU killed with SIGKILL leaves nothing in the tmpfs once its virtiofsd is gone", async () => {
  const { vm, vfs } = await podLikeVm("kill");
  try {
    await vm.start();
    await until("the guest touches its RAM", async () => (await usedBytes()) > 0);
    process.kill(vm.pid ?? 0, "SIGKILL");
    const exit = await Promise.race([vm.wait(), sleep(deadlineMs, undefined, { ref: false }).then(() => undefined)]);
    assert.ok(exit !== undefined, "the VM's end is noticed");
  } finally {
    await vm.stop({ timeoutMs: 5000 }).catch(() => undefined);
    await vfs.stop();
  }
  await assertEmpty("after a killed QEMU");
});

void test("huge guest RAM: a QEMU that fails after creating its RAM (a kernel it cannot load) leaves nothing in the tmpfs", async () => {
  // An ELF without a PVH note: QEMU creates guest RAM, then refuses it while loading the kernel.
  const bad = join(root, "not-a-kernel");
  await copyFile("/usr/bin/true", bad);
  const { vm, vfs } = await podLikeVm("bad-kernel", { kernelPath: bad });
  try {
    await assert.rejects(vm.start(), /kernel|QEMU/i);
  } finally {
    await vm.stop({ timeoutMs: 5000 }).catch(() => undefined);
    await vfs.stop();
  }
  await assertEmpty("after a failed start");
});
