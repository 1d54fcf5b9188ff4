// Boots the real guest (kernel, initramfs, erofs rootfs, Node agent) under real QEMU and talks to
// the agent over ttRPC on the virtio-serial port; then checks that stopping leaves nothing behind.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, readdir, readFile } from "node:fs/promises";
import { release } from "node:os";
import { join } from "node:path";
import { bootVm } from "../../src/sandbox/agent-boot.js";
import { QemuHypervisor } from "../../src/hypervisor/qemu/index.js";
import { isElfFile } from "../../src/hypervisor/qemu/kernel-copy.js";
import { isKataError } from "../../src/util/errors.js";
import type { GuestAssets } from "../../src/guest/assets.js";
import { assets, busyboxPid1Cmdline, cleanupRoot, exists, guestWithoutAcpi, processesMentioning, tempRoot, vmConfig } from "./vm-support.js";

const bootDeadlineMs = 120_000;
let root: string;
let guest: GuestAssets;

before(async () => {
  guest = await assets();
  root = await tempRoot("vm-boot");
});

after(async () => {
  const leftovers = await processesMentioning(root);
  await cleanupRoot(root);
  assert.deepEqual(leftovers, [], "no QEMU process may outlive the tests");
});

void test("the real guest boots; its agent answers Health.Check and Version over ttRPC; stop leaves nothing", async () => {
  const { vm, agent, health, timings } = await bootVm(vmConfig(guest, root, "boot1"), { deadlineMs: bootDeadlineMs });
  try {
    assert.equal(vm.state, "running");
    assert.equal(vm.accel, "tcg");
    assert.ok(vm.pid !== undefined && vm.pid > 0);
    assert.ok(timings.checkAttempts >= 1);
    assert.equal((await health.check({})).status, 1 /* SERVING */);
    const version = await health.version({}, { timeoutMs: 10_000 });
    assert.equal(version.kernelRelease, guest.kernelRelease, "the agent runs on the guest kernel from the manifest");
    assert.notEqual(version.kernelRelease, release(), "the guest kernel is not the host's");
    assert.ok(version.uptimeSeconds > 0);
    assert.match(version.bootId, /^[0-9a-f-]{36}$/);
    // The agent's node flags (--jitless) are part of V8's snapshot check: a snapshot built under
    // other flags is rejected and the init falls back to the slower script, which nothing else sees.
    const consoleText = await readFile(vm.consoleLogPath, "utf8");
    if (guest.manifest.agent.snapshot !== undefined) {
      assert.match(consoleText, /starting agent \(snapshot\)/, "the agent starts from its snapshot");
      assert.doesNotMatch(consoleText, /snapshot not usable/, `node accepted the snapshot built under ${JSON.stringify(guest.manifest.agent.nodeArgs)}`);
    }
    // QEMU's memory (docs/density.md): it booted the ELF kernel from a private copy that was emptied
    // once loaded, so it holds no page of any kernel file; and GLib's slice allocator is off.
    if (await isElfFile(guest.kernelPath)) {
      const maps = (await readFile(`/proc/${vm.pid}/smaps`, "utf8")).split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/);
      const kernelMaps = maps.filter((m) => (m.split("\n")[0] ?? "").endsWith("/vmlinux (deleted)"));
      assert.ok(kernelMaps.length > 0, "QEMU maps the copy of the kernel it loaded, now unlinked");
      for (const m of kernelMaps) assert.match(m, /^Rss:\s+0 kB$/m, `no kernel page resident in QEMU: ${m.split("\n")[0] ?? ""}`);
      assert.ok(!maps.some((m) => (m.split("\n")[0] ?? "").includes(guest.kernelPath)), "QEMU does not map the shared kernel file");
    }
    assert.deepEqual(await readdir(vm.stateDir).then((names) => names.filter((n) => n === "vmlinux")), [], "the copy is unlinked");
    assert.ok((await readFile(`/proc/${vm.pid}/environ`, "utf8")).split("\0").includes("G_SLICE=always-malloc"));
    assert.equal((await health.check({})).status, 1 /* SERVING */, "the guest runs on without the kernel file");
  } finally {
    agent.close();
  }
  const pid = vm.pid;
  const exit = await vm.stop({ timeoutMs: 5000 });
  assert.equal(exit.reason, "stopped");
  assert.equal(vm.state, "stopped");
  assert.equal(vm.pid, undefined);
  assert.deepEqual(await processesMentioning(vm.stateDir), [], "QEMU is gone");
  assert.throws(() => process.kill(pid ?? -1, 0), "the QEMU pid no longer exists (reaped)");
  assert.equal(await exists(vm.stateDir), false, "state dir (sockets, console log, pid file) removed");
  assert.deepEqual(await vm.stop(), exit, "stop is idempotent");
  await assert.rejects(vm.start(), (err) => isKataError(err, "FAILED_PRECONDITION"), "a stopped VM cannot be started again");
});

void test("a guest that powers itself off ends the VM with reason poweroff, and its state dir is removed (with ACPI, and without it where the kernel can)", async () => {
  const hv = await QemuHypervisor.open();
  // The project's kernel boots without ACPI (q35 then has no ACPI tables): by default under TCG when
  // it takes the preset APIC timer period, or with acpi=off; acpi=force keeps ACPI. Without ACPI the
  // guest ends itself by a reset that no panic caused, which still counts as a power-off.
  const variants: Array<{ name: string; params: string[] }> = guest.kernelRelease.includes("kata-ts")
    ? [{ name: "default", params: [] }, { name: "acpi-force", params: ["acpi=force"] }, { name: "acpi-off", params: ["acpi=off"] }]
    : [{ name: "default", params: [] }];
  for (const v of variants) {
    // The image's busybox as PID 1, powering off at once: no agent involved.
    const cmdlineGuest = { ...guest, kernelCmdline: [...guest.kernelCmdline, ...v.params] };
    const vm = await hv.create(vmConfig(guest, root, `poweroff-${v.name}`, { kernelCmdline: busyboxPid1Cmdline(cmdlineGuest, "poweroff", ["-f"]) }));
    await vm.start();
    const exit = await withTimeout(vm.wait(), bootDeadlineMs);
    assert.equal(exit.reason, "poweroff", v.name);
    assert.equal(exit.vmmReason, guestWithoutAcpi(cmdlineGuest) ? "guest-reset" : "guest-shutdown", v.name);
    assert.equal(exit.exitCode, 0);
    assert.equal(vm.state, "stopped");
    assert.equal(await exists(vm.stateDir), false);
    assert.deepEqual(await processesMentioning(vm.stateDir), []);
  }
});

void test("a guest kernel panic ends the VM with reason guest-panic and the console shows why (and the TCG guest's CPU has no ERMS)", async () => {
  const hv = await QemuHypervisor.open();
  // PID 1 prints the guest CPU's flags and exits: the kernel panics ("Attempted to kill init"),
  // panic=-1 reboots, -no-reboot ends QEMU. (Kernel parameters hold no spaces: ${IFS} splits.)
  const flags = "mount${IFS}-t${IFS}proc${IFS}proc${IFS}/proc;grep${IFS}-m1${IFS}^flags${IFS}/proc/cpuinfo";
  const vm = await hv.create(vmConfig(guest, root, "panic", { kernelCmdline: busyboxPid1Cmdline(guest, "sh", ["-c", flags]) }));
  await vm.start();
  const exit = await withTimeout(vm.wait(), bootDeadlineMs);
  assert.equal(exit.reason, "guest-panic");
  // Without ACPI the ISA pvpanic cannot be found; pvpanic-pci reports the panic (QEMU's panic action
  // ends it with SHUTDOWN guest-panic and exit status 1), not only the reset that panic=-1 makes.
  if (guestWithoutAcpi(guest)) assert.deepEqual([exit.vmmReason, exit.exitCode], ["guest-panic", 1], "pvpanic-pci reported the panic");
  const tail = exit.consoleTail ?? "";
  assert.match(tail, /Kernel panic/, "the console tail outlives the state dir");
  // Under TCG the CPU model is max without ERMS (src/hypervisor/qemu/args/cpu.ts): the guest kernel
  // and glibc then clear and copy memory without rep stosb/movsb, which TCG runs byte by byte.
  const flagsLine = /^flags\s*:(.*)$/m.exec(tail)?.[1] ?? "";
  assert.match(flagsLine, / avx2 /, `the guest has max's features: ${flagsLine}`);
  assert.doesNotMatch(`${flagsLine} `, / erms /, "the guest CPU has no ERMS");
  assert.equal(await exists(vm.stateDir), false);
});

void test("stop() during start() waits for it and leaves nothing; a second start() is refused", async () => {
  const hv = await QemuHypervisor.open();
  const vm = await hv.create(vmConfig(guest, root, "racy"));
  const starting = vm.start();
  await assert.rejects(vm.start(), (err) => isKataError(err, "FAILED_PRECONDITION"), "start twice");
  const exit = await vm.stop();
  await starting;
  assert.equal(exit.reason, "stopped");
  assert.equal(vm.state, "stopped");
  assert.equal(await exists(vm.stateDir), false);
  assert.deepEqual(await processesMentioning(vm.stateDir), []);
});

void test("with a virtio-fs share (real virtiofsd) and shared guest memory the guest boots and its agent answers", async () => {
  const shareDir = join(root, "share");
  await mkdir(shareDir);
  const socketPath = join(root, "vfsd.sock");
  const virtiofsd = spawn("/usr/lib/qemu/virtiofsd", [`--socket-path=${socketPath}`, "-o", `source=${shareDir}`, "-o", "cache=none", "-o", "sandbox=chroot"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const virtiofsdExit = once(virtiofsd, "exit");
  try {
    for (let i = 0; i < 200 && !(await exists(socketPath)); i++) await new Promise((r) => setTimeout(r, 25));
    const { vm, agent } = await bootVm(vmConfig(guest, root, "vfs", { sharedFs: { socketPath, tag: "kataShared" } }), { deadlineMs: bootDeadlineMs });
    agent.close();
    assert.equal((await vm.stop()).reason, "stopped");
    // virtiofsd serves one VMM connection and exits when it goes away.
    const [code] = await withTimeout(virtiofsdExit, 10_000);
    assert.equal(code, 0);
  } finally {
    virtiofsd.kill("SIGKILL");
    await virtiofsdExit;
  }
});

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no result within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
