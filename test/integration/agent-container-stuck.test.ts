// A crun that neither writes its pid file nor exits (in the guest: blocked on a virtio-fs that no
// longer answers, see docs/containers.md). StartContainer must not hang: the agent gives up before
// the caller's deadline with an error that carries crun's log and what its processes were doing,
// and kills what it started. A signal that comes while crun is still starting must never reach the
// agent's own process group (the pid is not known yet: process.kill(0) would be the agent's group).
// The stand-in crun is a real process tree (a shell that logs, forks a child and sleeps), driven by
// the real agent code, over a real ttRPC socket for the RPC case.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ContainerManager } from "../../src/agent/container/manager.js";
import { agentService } from "../../src/agent/container/service.js";
import { GuestSandbox } from "../../src/agent/container/sandbox-setup.js";
import { startTimeoutMs } from "../../src/agent/container/stuck-start.js";
import { AgentService } from "../../src/protocol/gen/katats/agent/v1/agent_pb.js";
import { TtrpcClient, TtrpcServer, createClient } from "../../src/protocol/ttrpc/index.js";
import { isKataError } from "../../src/util/errors.js";
import { specFor } from "./agent-container-fixture.js";

// Sleep durations nothing else on the machine uses: how the test finds the stand-in's processes.
const MARK = "3617";
const STUCK_CRUN = `#!/bin/sh
for a; do case "$a" in --log=file:*) log="\${a#--log=file:}";; esac; done
case " $* " in
  *" run "*|*" exec "*)
    echo '{"msg":"stuck-crun: waiting for the rootfs","level":"info"}' >> "$log"
    sleep ${MARK}1 &
    exec sleep ${MARK}2;;
esac
exit 0
`;

let dir: string;
let manager: ContainerManager;
let n = 0;

const leftovers = (): string[] =>
  execFileSync("ps", ["-eo", "args"], { encoding: "utf8" })
    .split("\n")
    .filter((l) => l.startsWith(`sleep ${MARK}`));

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "kata-ts-stuck-"));
  const crun = join(dir, "stuck-crun");
  await writeFile(crun, STUCK_CRUN);
  await chmod(crun, 0o755);
  manager = new ContainerManager({
    crun: { path: crun, root: join(dir, "crun-state"), cgroupManager: "disabled" },
    tools: { script: "script", stty: "stty" },
    bundleRoot: join(dir, "bundles"),
    cgroupRoot: "/sys/fs/cgroup",
    bindSourceRoots: [dir],
  });
});

after(async () => {
  await manager.removeAll();
  await rm(dir, { recursive: true, force: true });
  assert.deepEqual(leftovers(), [], "no process of the stand-in crun is left");
});

async function created(): Promise<string> {
  const id = `s${++n}`;
  await manager.createContainer({ containerId: id, specJson: JSON.stringify(specFor(["true"])), rootfs: join(dir, "rootfs"), openStdin: false, sandboxPidns: false });
  return id;
}

void test("stuck crun: StartContainer gives up before the caller's deadline, says why, and kills crun's whole tree", async () => {
  const id = await created();
  const t0 = Date.now();
  const deadline = t0 + 10_000;
  const err = await manager.startContainer(id, deadline).then(
    () => assert.fail("StartContainer succeeded with a crun that never wrote its pid"),
    (e: unknown) => e,
  );
  assert.ok(Date.now() < deadline, `answered ${Date.now() - t0} ms after the call, before the caller's 10 s deadline`);
  assert.ok(isKataError(err, "DEADLINE_EXCEEDED"), String(err));
  assert.match(err.message, /crun did not start container s\d+ within \d+ s: it neither wrote its pid file nor exited/);
  assert.match(err.message, /its processes were: sleep \(pid \d+\) state S.*, sleep \(pid \d+\) state S/, "crun and its child, with their state");
  assert.match(err.message, /all killed/);
  assert.match(err.message, /crun log: .*stuck-crun: waiting for the rootfs/, "crun's own log is in the error");
  assert.deepEqual(leftovers(), [], "crun and the process it started are gone");
  assert.equal(manager.getContainerState(id), "stopped");
  await manager.removeContainer(id, false);
});

void test("stuck crun: a signal while crun is starting is held (not sent to pid 0); SIGKILL ends the start", async () => {
  const id = await created();
  const starting = manager.startContainer(id, Date.now() + 60_000).then(
    () => assert.fail("started"),
    (e: unknown) => e,
  );
  await new Promise((r) => setTimeout(r, 300));
  // SIGTERM to process group 0 would end this test process: it is still here to assert.
  await manager.signalProcess(id, "", 15, false);
  assert.equal(manager.getContainerState(id), "running", "held until the container process exists");
  await manager.signalProcess(id, "", 9, false);
  const err = await starting;
  assert.ok(isKataError(err, "FAILED_PRECONDITION"), String(err));
  assert.match(err.message, /crun could not start container s\d+ \(status 137\)/);
  assert.deepEqual(leftovers(), [], "SIGKILL reached crun's child too");
  await manager.removeContainer(id, false);
});

void test("stuck crun over ttRPC: the agent's own error, with crun's log, arrives before the client's deadline", async () => {
  const sandbox = new GuestSandbox({ sharedDir: join(dir, "shared"), resolvConf: join(dir, "resolv.conf"), hostnameFile: join(dir, "hostname") });
  const server = new TtrpcServer();
  server.register(AgentService, agentService({ manager, sandbox }));
  const sock = join(dir, "agent.sock");
  await server.listen(sock);
  const client = await TtrpcClient.connect(sock, { timeoutMs: 5000 });
  try {
    const agent = createClient(client, AgentService);
    const id = await created();
    const err = await agent.startContainer({ containerId: id }, { timeoutMs: 10_000 }).then(
      () => assert.fail("started"),
      (e: unknown) => e as Error & { code?: unknown },
    );
    assert.doesNotMatch(err.message, /deadline of 10000 ms exceeded/, "not the client's own deadline: the agent answered first");
    assert.match(err.message, /crun did not start container .* crun log: .*stuck-crun: waiting for the rootfs/);
    await agent.removeContainer({ containerId: id, force: true }, { timeoutMs: 5_000 });
  } finally {
    client.close();
    await server.close();
  }
});

void test("start timeout: the caller's deadline less a margin (10 % of what is left, 3 to 15 s), never above the agent's own", () => {
  const now = 1_000_000;
  assert.equal(startTimeoutMs(undefined, undefined, now), 120_000, "no deadline: the agent's own 120 s");
  assert.equal(startTimeoutMs(undefined, now + 120_000, now), 108_000, "the shim's 120 s StartContainer deadline: 12 s before it");
  assert.equal(startTimeoutMs(undefined, now + 600_000, now), 120_000, "a far deadline does not lengthen the agent's own");
  assert.equal(startTimeoutMs(30_000, now + 10_000, now), 7_000, "a short deadline keeps at least 3 s to answer");
  assert.equal(startTimeoutMs(undefined, now - 10, now), 0, "a deadline already past: give up at once");
});
