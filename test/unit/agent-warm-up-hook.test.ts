// The container warm-up (kata_ts.warm_up=containers) is run by the host's set-up call, after its
// work: AgentService calls deps.warmUp after CreateSandbox's work (in the background there), and
// not for a CreateSandbox that failed. PrepareSandbox awaits it the same way before it answers; it
// needs the guest to run (test/e2e/pool.test.ts: a pooled VM's console says the warm-up is done
// before the pool offers it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { agentService, guestManagerConfig } from "../../src/agent/container/service.js";
import { ContainerManager } from "../../src/agent/container/manager.js";
import { GuestSandbox } from "../../src/agent/container/sandbox-setup.js";
import { CreateSandboxRequestSchema, PrepareSandboxRequestSchema } from "../../src/protocol/gen/katats/agent/v1/agent_pb.js";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import type { HandlerContext } from "../../src/protocol/ttrpc/index.js";
import { KataError } from "../../src/util/errors.js";

void test("the warm-up hook is called once CreateSandbox has set the sandbox up, and not when it failed", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kts-setup-hook-"));
  try {
    const events: string[] = [];
    const sandbox = new GuestSandbox({ sharedDir: join(dir, "shared"), resolvConf: join(dir, "resolv.conf"), hostnameFile: join(dir, "hostname") }, { sync: () => Promise.resolve(false) });
    const service = agentService({ manager: new ContainerManager(guestManagerConfig()), sandbox, warmUp: () => (events.push("warm-up"), Promise.resolve()) });
    const ctx = { signal: new AbortController().signal } as HandlerContext;
    const req = create(CreateSandboxRequestSchema, { sandboxId: "pod", hostname: "pod-a", dns: ["nameserver 10.96.0.10"] });
    await service.createSandbox!(req, ctx);
    assert.deepEqual(events, ["warm-up"]);
    assert.equal(await readFile(join(dir, "hostname"), "utf8"), "pod-a", "called after the sandbox's work");
    await assert.rejects(service.createSandbox!(req, ctx), (err: unknown) => err instanceof KataError && err.code === "ALREADY_EXISTS");
    assert.deepEqual(events, ["warm-up"], "a failed CreateSandbox does not call it");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test("PrepareSandbox runs adoption's code first and the container warm-up after it (the order measured best on a quiet host: docs/pool.md)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kts-setup-hook-"));
  try {
    const events: string[] = [];
    const sandbox = new GuestSandbox({ sharedDir: join(dir, "shared"), resolvConf: join(dir, "resolv.conf"), hostnameFile: join(dir, "hostname") }, { sync: () => (events.push("clock"), Promise.resolve(true)) });
    const service = agentService({
      manager: new ContainerManager(guestManagerConfig()),
      sandbox,
      warmUp: () => (events.push("containers"), Promise.resolve()),
      warmAdoption: () => (events.push("adoption"), Promise.resolve()),
    });
    const ctx = { signal: new AbortController().signal } as HandlerContext;
    await service.prepareSandbox!(create(PrepareSandboxRequestSchema, { hostTime: timestampNow(), sharedFsTag: "" }), ctx);
    assert.deepEqual(events, ["clock", "adoption", "containers"]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test("PrepareSandbox with rehearse runs the pod path's rehearsal only on a prepared VM that no pod has, and nothing else", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kts-setup-hook-"));
  try {
    const events: string[] = [];
    const mounted: string[] = [];
    const sandbox = new GuestSandbox({ sharedDir: join(dir, "shared"), resolvConf: join(dir, "resolv.conf"), hostnameFile: join(dir, "hostname") }, { sync: () => (events.push("clock"), Promise.resolve(true)) });
    // The share's mount stands in for virtio-fs here: recorded, not made.
    (sandbox as unknown as { mount(m: { source: string }): Promise<void> }).mount = (m) => (mounted.push(m.source), Promise.resolve());
    const service = agentService({
      manager: new ContainerManager(guestManagerConfig()),
      sandbox,
      warmUp: () => (events.push("containers"), Promise.resolve()),
      warmAdoption: () => (events.push("adoption"), Promise.resolve()),
      rehearse: () => (events.push("rehearsal"), Promise.resolve()),
    });
    const ctx = { signal: new AbortController().signal } as HandlerContext;
    const rehearse = create(PrepareSandboxRequestSchema, { rehearse: true });
    await assert.rejects(service.prepareSandbox!(rehearse, ctx), /call PrepareSandbox without rehearse first/);
    await service.prepareSandbox!(create(PrepareSandboxRequestSchema, { hostTime: timestampNow(), sharedFsTag: "kata-ts-shared" }), ctx);
    await service.prepareSandbox!(rehearse, ctx);
    assert.deepEqual(events, ["clock", "adoption", "containers", "rehearsal"], "the second call runs the rehearsal alone");
    assert.deepEqual(mounted, ["kata-ts-shared"], "the share is mounted once");
    await service.createSandbox!(create(CreateSandboxRequestSchema, { sandboxId: "pod", sharedFsTag: "kata-ts-shared" }), ctx);
    await assert.rejects(service.prepareSandbox!(rehearse, ctx), (err: unknown) => err instanceof KataError && err.code === "FAILED_PRECONDITION", "never once a pod has the VM");
    assert.equal(events.filter((e) => e === "rehearsal").length, 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
