// The capped console log against a real unix socket client standing in for QEMU's serial chardev:
// rotation at the cap, the newest bytes kept in order, a second client refused, and close()
// waiting for the writer's last bytes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { readFile, readdir } from "node:fs/promises";
import net from "node:net";
import { ConsoleLog } from "../../src/hypervisor/console-log.js";
import { isKataError } from "../../src/util/errors.js";
import { withTempDir } from "./ttrpc-wire.js";

void test("console log: rotated at its cap, newest bytes kept in order, one writer only, last bytes flushed on close", async () => {
  await withTempDir(async (dir) => {
    const cap = 4096;
    const log = await ConsoleLog.listen(`${dir}/console.sock`, `${dir}/console.log`, cap);
    const qemu = net.createConnection(`${dir}/console.sock`);
    await once(qemu, "connect");
    const intruder = net.createConnection(`${dir}/console.sock`);
    intruder.on("error", () => undefined);
    await once(intruder, "close"); // only the first connection is QEMU's
    // 100 numbered lines of 100 bytes, in small writes: 10,000 bytes, so two rotations.
    const lines = Array.from({ length: 100 }, (_, i) => `${String(i).padStart(4, "0")} ${"x".repeat(94)}\n`);
    for (const line of lines) qemu.write(line);
    qemu.end();
    await log.close(5000);
    assert.equal(log.bytesReceived, 10_000);
    assert.deepEqual((await readdir(dir)).sort(), ["console.log", "console.log.1"], "socket removed, two files");
    const current = await readFile(`${dir}/console.log`, "utf8");
    const previous = await readFile(`${dir}/console.log.1`, "utf8");
    assert.equal(previous.length, cap);
    assert.equal(current.length, 10_000 - 2 * cap);
    assert.equal(previous + current, lines.join("").slice(cap), "the newest bytes, in order");
  });
});

void test("console log: a cap below 4 KiB is refused", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(ConsoleLog.listen(`${dir}/c.sock`, `${dir}/c.log`, 100), (e: unknown) => isKataError(e, "INVALID_ARGUMENT"));
  });
});

void test("console log: a reader polling console.log while it rotates never finds it missing", async () => {
  await withTempDir(async (dir) => {
    const cap = 4096;
    const log = await ConsoleLog.listen(`${dir}/console.sock`, `${dir}/console.log`, cap);
    const vmm = net.createConnection(`${dir}/console.sock`);
    await once(vmm, "connect");
    let reading = true;
    let reads = 0;
    const reader = (async () => {
      while (reading) {
        await readFile(`${dir}/console.log`); // ENOENT here fails the test
        reads++;
      }
    })();
    // 200 rotations' worth, in 1 KiB writes, so the reader meets many rotations.
    const chunk = Buffer.alloc(1024, "y");
    for (let i = 0; i < 800; i++) {
      if (!vmm.write(chunk)) await once(vmm, "drain");
    }
    vmm.end();
    await log.close(10_000);
    reading = false;
    await reader;
    assert.ok(reads > 0, "the reader read while the log rotated");
    assert.equal(log.bytesReceived, 800 * 1024);
    assert.deepEqual((await readdir(dir)).sort(), ["console.log", "console.log.1"], "no rotation leftovers");
  });
});
