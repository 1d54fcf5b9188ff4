// PrepareSandbox then CreateSandbox in the guest (src/agent/container/sandbox-setup.ts), with the
// clock step recorded instead of run and no share (mounting virtio-fs needs the guest): the clock
// is compared at both steps, prepare comes only before create, and create still writes the pod's
// hostname and DNS.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GuestSandbox } from "../../src/agent/container/sandbox-setup.js";
import { KataError } from "../../src/util/errors.js";

void test("prepare syncs the clock; create compares it again and sets the pod's hostname and DNS; prepare after create is refused", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kts-prepare-"));
  try {
    const synced: number[] = [];
    const sandbox = new GuestSandbox({ sharedDir: join(dir, "shared"), resolvConf: join(dir, "resolv.conf"), hostnameFile: join(dir, "hostname") }, { sync: async (t) => (synced.push(t.getTime()), false) });
    await sandbox.prepare({ hostTime: new Date(1000), sharedFsTag: "" });
    assert.deepEqual(synced, [1000], "prepare hands the host's time to the clock check");
    assert.equal(sandbox.prepared, undefined, "no share asked for, none mounted");
    await sandbox.create({ sandboxId: "pod", hostname: "pod-a", dns: ["nameserver 10.96.0.10"], sharedFsTag: "", hostTime: new Date(2000), mounts: [] });
    assert.deepEqual(synced, [1000, 2000], "create checks the clock again (it sets it only when off)");
    assert.equal(await readFile(join(dir, "hostname"), "utf8"), "pod-a");
    assert.equal(await readFile(join(dir, "resolv.conf"), "utf8"), "nameserver 10.96.0.10\n");
    await assert.rejects(sandbox.prepare({ hostTime: undefined, sharedFsTag: "" }), (err: unknown) => err instanceof KataError && err.code === "FAILED_PRECONDITION" && /before CreateSandbox/.test(err.message));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
