// A pooled VM keeps the pool's agent connection while it waits for a pod (src/pool/pooled-vm.ts):
// with no host connected, the agent polls its virtio-serial port every 20 ms (~80 millicores of
// host CPU per idle pooled VM under TCG, docs/pool.md "A pooled VM's idle"); connected, its read
// blocks. At the hand-over the pool closes it, and the adopter's own connection is answered. A
// real VM booted as the pool boots it (no container warm-up: not what is tested); QEMU's end of
// the agent socket is read from /proc/net/unix (a connected socket bound to agent.sock).
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { access, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig, selectedVmmConfig } from "../../src/config/index.js";
import { vmLayout } from "../../src/hypervisor/qemu/layout.js";
import { PooledVm } from "../../src/pool/pooled-vm.js";
import { podAssets, poolShape } from "../../src/pool/shape.js";
import { TtrpcClient } from "../../src/protocol/ttrpc/index.js";
import { AgentClient } from "../../src/sandbox/agent-client.js";
import { processesMentioning } from "../harness/processes.js";

const dir = await mkdtemp(join(tmpdir(), "kts-pool-conn-"));
let pooled: PooledVm | undefined;

after(async () => {
  await pooled?.reclaimUntaken().catch(() => undefined);
  await pooled?.destroy().catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
  const left = await processesMentioning(dir);
  assert.deepEqual(left.map((p) => p.cmdline.join(" ")), [], "no QEMU or virtiofsd of the test left");
  assert.equal(await access(dir).then(() => true, () => false), false, "the test dir is gone");
});

/** Connected (state 03) unix sockets bound to `path`: QEMU's end of a client connection. */
async function connectedAt(path: string): Promise<number> {
  const rows = (await readFile("/proc/net/unix", "utf8")).split("\n").slice(1);
  return rows.filter((r) => {
    const f = r.trim().split(/\s+/);
    return f[5] === "03" && f[7] === path;
  }).length;
}

async function until(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) assert.fail(`${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

void test("a pooled VM holds the pool's agent connection until the hand-over; the adopter's own connection is answered after it", { timeout: 600_000 }, async () => {
  const config = parseConfig("", "built-in defaults");
  const vmm = selectedVmmConfig(config);
  const shape = poolShape(config, await podAssets(config), { vcpus: vmm.default_vcpus, memoryMiB: vmm.default_memory }, "");
  pooled = await PooledVm.boot(shape, join(dir, "vms"), { bootTimeoutMs: 540_000, warmUpContainers: false });
  const agentSocket = vmLayout(pooled.paths.vmStateDir).agentSocketPath;
  assert.equal(await connectedAt(agentSocket), 1, "QEMU's agent socket has the pool's connection while the VM is pooled");
  // Still held a while later (nothing closes it before the hand-over).
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(await connectedAt(agentSocket), 1, "the pool's connection is still open");

  const handle = pooled.handOver();
  const socket = vmLayout(join(handle.dir, "vm")).agentSocketPath;
  await until("the pool's connection closed at the hand-over", async () => (await connectedAt(socket)) === 0, 10_000);
  const conn = await TtrpcClient.connect(socket, { timeoutMs: 10_000 });
  try {
    await new AgentClient(conn).check(60_000);
  } finally {
    conn.close();
  }
});
