// The guest agent's parts that run outside a VM: Health over a real ttRPC connection, port discovery
// in a sysfs-shaped tree, vsock detection.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { release, tmpdir } from "node:os";
import { join } from "node:path";
import { createAgentServer } from "../../src/agent/server.js";
import { findVirtioPort } from "../../src/agent/virtio-port.js";
import { vsockPresent } from "../../src/agent/vsock.js";
import { CheckResponse_ServingStatus, Health } from "../../src/protocol/gen/katats/agent/v1/health_pb.js";
import { TtrpcClient, createClient } from "../../src/protocol/ttrpc/index.js";

async function withTmp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-agent-"));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

void test("agent: Health.Check answers SERVING and Version describes the guest", async () => {
  await withTmp(async (dir) => {
    const server = createAgentServer();
    const sock = join(dir, "agent.sock");
    await server.listen(sock);
    const client = await TtrpcClient.connect(sock, { timeoutMs: 5000 });
    try {
      const health = createClient(client, Health);
      assert.equal((await health.check({}, { timeoutMs: 5000 })).status, CheckResponse_ServingStatus.SERVING);
      const v = await health.version({}, { timeoutMs: 5000 });
      assert.equal(v.agentVersion, "dev"); // the bundle bakes in package.json's version; unbundled code says dev
      assert.equal(v.kernelRelease, release());
      assert.equal(v.nodeVersion, process.version);
      assert.ok(v.uptimeSeconds > 0);
      assert.equal(v.bootId, (await readFile("/proc/sys/kernel/random/boot_id", "utf8")).trim());
    } finally {
      client.close();
      await server.close();
    }
    await assert.rejects(() => new Promise((resolve, reject) => net.connect(sock).once("connect", resolve).once("error", reject)));
  });
});

void test("agent: the port named agent.0 is found under virtio-ports", async () => {
  await withTmp(async (dir) => {
    for (const [entry, name] of [["vport1p1", "org.qemu.guest_agent.0"], ["vport1p2", "agent.0"], ["vport2p1", "agent.1"]] as const) {
      await mkdir(join(dir, entry));
      await writeFile(join(dir, entry, "name"), `${name}\n`);
    }
    await mkdir(join(dir, "vport3p1")); // a port without a name file (unnamed port)
    assert.equal(findVirtioPort("agent.0", dir), "/dev/vport1p2");
    assert.equal(findVirtioPort("agent.9", dir), undefined);
    assert.equal(findVirtioPort("agent.0", join(dir, "missing")), undefined);
  });
});

void test("agent: vsock counts only when a virtio vsock device is bound", async () => {
  await withTmp(async (dir) => {
    assert.equal(vsockPresent(join(dir, "none")), false);
    await mkdir(join(dir, "drv"));
    await writeFile(join(dir, "drv", "uevent"), "");
    assert.equal(vsockPresent(join(dir, "drv")), false);
    await mkdir(join(dir, "drv", "virtio3"));
    assert.equal(vsockPresent(join(dir, "drv")), true);
  });
});
