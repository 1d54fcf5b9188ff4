// AgentService over a real ttRPC unix socket, backed by the container manager and real crun on
// this host: the same calls the host sandbox makes to the agent in the VM.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { TtrpcClient, TtrpcServer, createClient } from "../../src/protocol/ttrpc/index.js";
import { AgentService } from "../../src/protocol/gen/katats/agent/v1/agent_pb.js";
import { agentService } from "../../src/agent/container/service.js";
import { GuestSandbox } from "../../src/agent/container/sandbox-setup.js";
import { isKataError } from "../../src/util/errors.js";
import { makeFixture, specFor, type Fixture } from "./agent-container-fixture.js";

const agentClient = (c: TtrpcClient) => createClient(c, AgentService);

let fx: Fixture;
let server: TtrpcServer;
let client: TtrpcClient;
let agent: ReturnType<typeof agentClient>;

before(async () => {
  fx = await makeFixture();
  const sandbox = new GuestSandbox({ sharedDir: join(fx.dir, "shared"), resolvConf: join(fx.dir, "resolv.conf"), hostnameFile: join(fx.dir, "hostname") });
  server = new TtrpcServer();
  server.register(AgentService, agentService({ manager: fx.manager, sandbox }));
  const sock = join(fx.dir, "agent.sock");
  await server.listen(sock);
  client = await TtrpcClient.connect(sock, { timeoutMs: 5000 });
  agent = agentClient(client);
});

after(async () => {
  client.close();
  await server.close();
  await fx.cleanup();
  const mounts = readFileSync("/proc/self/mountinfo", "utf8");
  assert.equal(mounts.includes(fx.dir), false, "no mount left under the test dir");
});

async function readAll(method: "readStdout" | "readStderr", containerId: string, execId: string): Promise<string> {
  let out = "";
  for (;;) {
    const r = await agent[method]({ containerId, execId, len: 65536 }, { timeoutMs: 30_000 });
    out += Buffer.from(r.data).toString();
    if (r.eof) return out;
  }
}

void test("rpc: sandbox set-up, a container on a bind-mounted rootfs, exec, wait, remove, destroy", async () => {
  await agent.createSandbox({ sandboxId: "sb1", hostname: "pod-host", dns: ["nameserver 10.0.0.10", "search svc.local"] });
  assert.equal(await readFile(join(fx.dir, "resolv.conf"), "utf8"), "nameserver 10.0.0.10\nsearch svc.local\n");
  assert.equal(await readFile(join(fx.dir, "hostname"), "utf8"), "pod-host");

  const target = join(fx.dir, "mnt", "c1", "rootfs");
  const spec = specFor(["sh", "-c", "read line; echo got:$line; echo oops >&2; sleep 1000"]);
  await agent.createContainer({
    containerId: "c1",
    ociSpecJson: JSON.stringify(spec),
    rootfs: target,
    mounts: [{ source: fx.rootfs, target, fstype: "bind", options: ["rbind"] }],
    openStdin: true,
  });
  assert.ok(readFileSync("/proc/self/mountinfo", "utf8").includes(target), "rootfs bind-mounted");
  const started = await agent.startContainer({ containerId: "c1" });
  assert.ok(started.pid > 0);
  assert.equal((await agent.writeStdin({ containerId: "c1", data: Buffer.from("ping\n") })).len, 5);

  const ex = await agent.execProcess({
    containerId: "c1",
    execId: "e1",
    processJson: JSON.stringify({ args: ["sh", "-c", "echo exec:$V; exit 9"], cwd: "/", user: { uid: 0, gid: 0 }, env: ["V=ok", "PATH=/bin"] }),
  });
  assert.ok(ex.pid > 0);
  assert.equal(await readAll("readStdout", "c1", "e1"), "exec:ok\n");
  assert.equal((await agent.waitProcess({ containerId: "c1", execId: "e1" }, { timeoutMs: 30_000 })).status, 9);

  await agent.signalProcess({ containerId: "c1", signal: 9 });
  const wait = await agent.waitProcess({ containerId: "c1" }, { timeoutMs: 30_000 });
  assert.equal(wait.status, 137);
  assert.ok(wait.exitedAt !== undefined && Number(wait.exitedAt.seconds) > 0);
  assert.equal(await readAll("readStdout", "c1", ""), "got:ping\n");
  assert.equal(await readAll("readStderr", "c1", ""), "oops\n");

  // Errors cross the wire with their codes.
  await assert.rejects(agent.signalProcess({ containerId: "c1", signal: 9 }), (e) => isKataError(e, "NOT_FOUND"));
  await assert.rejects(agent.startContainer({ containerId: "nope" }), (e) => isKataError(e, "NOT_FOUND"));
  await assert.rejects(agent.statsContainer({ containerId: "c1" }), (e) => isKataError(e, "FAILED_PRECONDITION"));

  await agent.removeContainer({ containerId: "c1" });
  assert.equal(readFileSync("/proc/self/mountinfo", "utf8").includes(target), false, "rootfs unmounted on remove");
  await agent.destroySandbox({});
});
