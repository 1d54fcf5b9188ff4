// The agent's wait for a block device the host re-pointed while the guest runs: it mounts only
// once the device has the size the host announced (kata-ts.dev-size=N), which the guest kernel
// learns asynchronously. A sysfs-shaped directory of real files stands in for /sys/class/block.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { splitDevSize, waitForDeviceSize } from "../../src/agent/container/block-device.js";
import { isKataError } from "../../src/util/errors.js";

let sys: string;
before(async () => {
  sys = await mkdtemp(join(tmpdir(), "kata-ts-sysblock-"));
});
after(async () => {
  await rm(sys, { recursive: true, force: true });
});

void test("dev-size option: taken out of the mount options, validated", () => {
  assert.deepEqual(splitDevSize(["ro", "kata-ts.dev-size=8192"]), { bytes: 8192, options: ["ro"] });
  assert.deepEqual(splitDevSize(["ro"]), { bytes: undefined, options: ["ro"] });
  assert.throws(() => splitDevSize(["kata-ts.dev-size=-1"]), (e) => isKataError(e, "INVALID_ARGUMENT"));
});

void test("device size: waits while the device has its placeholder size, resolves when the new capacity arrives, times out naming both sizes", async () => {
  await mkdir(join(sys, "vdb"));
  await writeFile(join(sys, "vdb", "size"), "0\n");
  const waiting = waitForDeviceSize("/dev/vdb", 16 * 512, { sysBlock: sys, timeoutMs: 5000 });
  setTimeout(() => void writeFile(join(sys, "vdb", "size"), "16\n"), 100);
  await waiting;
  await assert.rejects(
    waitForDeviceSize("/dev/vdb", 4096, { sysBlock: sys, timeoutMs: 200 }),
    (e) => isKataError(e, "FAILED_PRECONDITION") && /\/dev\/vdb has 8192 bytes .* image of 4096 bytes/.test(e.message),
  );
  await assert.rejects(waitForDeviceSize("/dev/vdz", 4096, { sysBlock: sys, timeoutMs: 100 }), (e) => isKataError(e, "FAILED_PRECONDITION") && /vdz does not exist/.test(e.message));
});
