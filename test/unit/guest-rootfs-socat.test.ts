// The guest image carries the agent's vsock bridge: socat with every library it needs, staged the
// way build-assets stages the root filesystem, and run inside that root (chroot), so a missing
// library or a socat without VSOCK support fails here rather than in a guest this host cannot boot
// (no KVM for Cloud Hypervisor or Firecracker, no vhost-vsock for QEMU).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stageRootfs, SOCAT } from "../../src/guest/rootfs.js";
import { SOCAT as AGENT_SOCAT } from "../../src/agent/vsock-bridge.js";
import { run } from "../../src/util/exec.js";

void test("guest rootfs: socat is where the agent starts it, runs in the staged root with its own libraries, and knows VSOCK-LISTEN", async () => {
  const work = await mkdtemp(join(tmpdir(), "kata-ts-rootfs-socat-"));
  try {
    const root = await stageRootfs({ workDir: work, agentCode: new TextEncoder().encode("// stand-in agent\n"), nodeArgs: [], out: join(work, "rootfs.erofs") });
    assert.equal(SOCAT, AGENT_SOCAT, "the image puts socat where the agent looks for it");
    const { stdout } = await run("chroot", [root, SOCAT, "-V"], { timeoutMs: 30_000 });
    assert.match(stdout, /#define WITH_VSOCK 1/, "Debian's socat is built with vsock support");
    const help = await run("chroot", [root, SOCAT, "-h"], { timeoutMs: 30_000 });
    assert.match(help.stdout, /vsock-listen:<port>/i, "VSOCK-LISTEN is an address type");
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
