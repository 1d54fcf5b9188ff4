// A guest that floods its console cannot fill the host's disk: the real guest kernel with PID 1
// `cat`ting a 2 MB binary to /dev/console (twice), then waiting on the console forever, under real
// QEMU. The log is rotated at its cap (console.log + console.log.1), and stop leaves nothing.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { QemuHypervisor } from "../../src/hypervisor/qemu/index.js";
import type { GuestAssets } from "../../src/guest/assets.js";
import { assets, busyboxPid1Cmdline, cleanupRoot, exists, processesMentioning, tempRoot, vmConfig } from "./vm-support.js";

let root: string;
let guest: GuestAssets;

before(async () => {
  guest = await assets();
  root = await tempRoot("vm-console");
});

after(async () => {
  const leftovers = await processesMentioning(root);
  await cleanupRoot(root);
  assert.deepEqual(leftovers, [], "no QEMU process may outlive the tests");
});

const rotationNames = new Set(["console.log", "console.log.1", "console.log.next", "console.log.1.next"]);

const sizeOf = async (path: string): Promise<number> => (await stat(path).catch(() => undefined))?.size ?? 0;

void test("a guest flooding its console: the log stays under its cap (rotated once), and stop leaves nothing", { timeout: 300_000 }, async (t) => {
  const cap = 64 << 10;
  const hv = await QemuHypervisor.open({ consoleLogMaxBytes: cap });
  const vm = await hv.create(
    vmConfig(guest, root, "flood", { kernelCmdline: busyboxPid1Cmdline(guest, "cat", ["/bin/busybox", "/bin/busybox", "/dev/console"]) }),
  );
  await vm.start();
  try {
    const log = vm.consoleLogPath;
    const target = 12 * cap; // many rotations' worth
    const deadline = Date.now() + 240_000;
    let largest = 0;
    let rotatedSeen = false;
    while (vm.consoleBytes < target) {
      assert.ok(Date.now() < deadline, `the guest wrote only ${vm.consoleBytes} console bytes in 240 s`);
      assert.equal(vm.state, "running", "the flood does not end the VM");
      const files = (await readdir(vm.stateDir)).filter((f) => f.startsWith("console.log"));
      // A rotation in flight shows its two transient names for a moment: console.log.next (the fresh,
      // empty file) and console.log.1.next (a second name of the full console.log): neither adds bytes.
      assert.ok(files.every((f) => rotationNames.has(f)), `console files: ${files.join(", ")}`);
      for (const f of files) largest = Math.max(largest, await sizeOf(join(vm.stateDir, f)));
      rotatedSeen ||= files.includes("console.log.1");
      await new Promise((r) => setTimeout(r, 200));
    }
    const onDisk = (await sizeOf(log)) + (await sizeOf(`${log}.1`));
    t.diagnostic(`guest wrote ${vm.consoleBytes} console bytes; ${onDisk} on disk; largest file seen ${largest}`);
    assert.ok(rotatedSeen, "the log was rotated");
    assert.ok(largest <= cap, `a console file reached ${largest} bytes (cap ${cap})`);
    assert.ok(onDisk <= 2 * cap, `${onDisk} bytes of console on disk`);
    assert.equal(await sizeOf(`${log}.1`), cap, "the rotated file is a full one");
  } finally {
    const exit = await vm.stop({ timeoutMs: 5000 });
    t.diagnostic(`VM ended: ${exit.reason}`);
  }
  assert.equal(await exists(vm.stateDir), false, "state dir (console socket and logs) removed");
  assert.deepEqual(await processesMentioning(vm.stateDir), []);
});
