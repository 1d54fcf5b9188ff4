// The guest agent on vsock, as far as it runs on this host (no vsock here: the host is itself a VM
// without vsock loopback, and QEMU lacks /dev/vhost-vsock). What runs for real: the channel the
// agent picks from the kernel command line each driver writes, and the bridge (the guest image's
// socat, started by the agent once it listens) with its vsock listen address swapped for a unix
// one, carrying ttRPC Health calls from several host connections to the agent's real ttRPC server.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serveOverBridge, vsockListenAddress, type BridgedAgent } from "../../src/agent/vsock-bridge.js";
import { healthService } from "../../src/agent/health.js";
import { chKernelParams } from "../../src/hypervisor/cloud-hypervisor/vm-config.js";
import { fcKernelParams } from "../../src/hypervisor/firecracker/requests.js";
import { vmmKernelParams } from "../../src/hypervisor/qemu/cmdline.js";
import { AGENT_PORT_NAME, AGENT_VSOCK_PORT, agentChannelFromCmdline } from "../../src/protocol/contract/guest.js";
import { CheckResponse_ServingStatus, Health } from "../../src/protocol/gen/katats/agent/v1/health_pb.js";
import { createClient, TtrpcClient, TtrpcServer } from "../../src/protocol/ttrpc/index.js";
import { isKataError } from "../../src/util/errors.js";
import { processesMentioning } from "../integration/vm-support.js";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "kata-ts-vbridge-"));
});
after(async () => {
  // socat's forked children end once they have seen both ends of their connection close, which on
  // a loaded host can be a moment after the bridge was closed: wait for that, then judge.
  let left = await processesMentioning(dir);
  for (let i = 0; i < 100 && left.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
    left = await processesMentioning(dir);
  }
  await rm(dir, { recursive: true, force: true });
  assert.deepEqual(left, [], "no bridge process outlives the tests");
});

const imageParams = ["root=/dev/vda", "rootfstype=erofs", "ro", "init=/sbin/kata-ts-init", "quiet"];

void test("agent channel: QEMU's command line means the virtio-serial port, Cloud Hypervisor's and Firecracker's mean vsock 1024; bad values are named", () => {
  const qemu = [...vmmKernelParams({ accel: "tcg", seccomp: true }), ...imageParams].join(" ");
  assert.deepEqual(agentChannelFromCmdline(qemu), { kind: "virtio-serial", portName: AGENT_PORT_NAME });
  for (const params of [chKernelParams(), fcKernelParams()]) {
    assert.deepEqual(agentChannelFromCmdline([...params, ...imageParams].join(" ")), { kind: "vsock", port: AGENT_VSOCK_PORT });
  }
  assert.deepEqual(agentChannelFromCmdline("kata_ts.agent=vsock:5 quiet kata_ts.agent=vsock:77\n"), { kind: "vsock", port: 77 }, "the last one wins");
  assert.deepEqual(agentChannelFromCmdline("kata_ts.agent=virtio-serial"), { kind: "virtio-serial", portName: AGENT_PORT_NAME });
  for (const bad of ["kata_ts.agent=vsock", "kata_ts.agent=vsock:0", "kata_ts.agent=vsock:99999999999", "kata_ts.agent=tcp:1"]) {
    assert.throws(() => agentChannelFromCmdline(bad), /kernel parameter kata_ts\.agent=.*expected "vsock:<port>"/, bad);
  }
  assert.equal(vsockListenAddress(1024), "VSOCK-LISTEN:1024,fork");
});

async function check(path: string): Promise<CheckResponse_ServingStatus> {
  const client = await TtrpcClient.connect(`unix://${path}`, { timeoutMs: 5000 });
  try {
    return (await createClient(client, Health).check({}, { timeoutMs: 5000 })).status;
  } finally {
    client.close();
  }
}

async function untilListening(path: string, deadlineMs: number): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    try {
      await check(path);
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

void test("vsock bridge: socat (listening on a unix stand-in for the vsock port) carries concurrent and successive host connections to the agent's ttRPC server; its end is the channel's end, named", async () => {
  const server = new TtrpcServer().register(Health, healthService());
  const port = join(dir, "vsock-1024.sock");
  const lines: string[] = [];
  const bridged: BridgedAgent = await serveOverBridge((sock) => server.serve(sock), {
    listen: `UNIX-LISTEN:${port},fork`,
    socketPath: join(dir, "agent", "agent.sock"),
    log: (l) => lines.push(l),
  });
  try {
    await untilListening(port, 10_000);
    const statuses = await Promise.all([check(port), check(port), check(port)]);
    assert.deepEqual(statuses, Array(3).fill(CheckResponse_ServingStatus.SERVING), "three concurrent host connections, each its own session");
    assert.equal(await check(port), CheckResponse_ServingStatus.SERVING, "a later connection after those closed");
    process.kill(bridged.bridgePid, "SIGKILL");
    await assert.rejects(bridged.ended, (e: unknown) => isKataError(e, "UNAVAILABLE") && /vsock bridge \(.*socat -d UNIX-LISTEN:.* UNIX-CONNECT:.*agent\.sock\) exited \(SIGKILL\)/.test((e as Error).message));
  } finally {
    await bridged.close();
  }
  // socat 1.7.4 warns when its SIGCHLD handler races a child it already reaped: harmless, not a fault of the bridge.
  const said = lines.filter((l) => !/ W waitpid\(-1, \{\}, WNOHANG\): no child has exited$/.test(l));
  assert.deepEqual(said, [], `socat said nothing (got ${said.join("; ")})`);
});

void test("vsock bridge: no socat in the image is NOT_FOUND naming it, and the agent's socket is not left listening", async () => {
  const socketPath = join(dir, "nosocat", "agent.sock");
  await assert.rejects(
    serveOverBridge(() => undefined, { listen: vsockListenAddress(1024), socketPath, socat: join(dir, "no-such-socat"), log: () => undefined }),
    (e: unknown) => isKataError(e, "NOT_FOUND") && /cannot start the agent's vsock bridge .*no-such-socat/.test((e as Error).message),
  );
  await assert.rejects(check(socketPath));
});
