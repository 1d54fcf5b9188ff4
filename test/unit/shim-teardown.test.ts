// The shim never exits in the middle of its pod's teardown: a Delete that started destroying the
// pod and a Shutdown/close that comes while it runs share one teardown, and close() returns only
// when it is over (a lost adopted pod's share mount outlived RemovePodSandbox because close()
// found no pod and the shim exited while the Delete's teardown still ran).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Pod, PodFactory, PodProcess, ProcessExit } from "../../src/shim/pod-port.js";
import { TaskService } from "../../src/shim/task-service.js";
import { createLogger } from "../../src/util/log.js";

/** The sandbox task's process: the VM's lifetime (here: until `end`). */
function pauseProcess(): PodProcess & { end(): void } {
  let end!: (e: ProcessExit) => void;
  const exited = new Promise<ProcessExit>((r) => (end = r));
  return {
    pid: 4242,
    start: () => Promise.resolve(),
    signal: () => Promise.resolve(),
    wait: () => exited,
    closeStdin: () => Promise.resolve(),
    resizePty: () => Promise.resolve(),
    end: () => end({ exitStatus: 137, exitedAt: new Date() }),
  };
}

/** A pod whose destroy() runs until the test releases it, counting calls. */
function slowPod(): { pod: Pod; release(): void; destroys: number; destroyed: boolean; sandbox: ReturnType<typeof pauseProcess> } {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const sandbox = pauseProcess();
  const state = { destroys: 0, destroyed: false };
  const pod: Pod = {
    pid: 4242,
    sandboxProcess: () => sandbox,
    createContainer: () => Promise.reject(new Error("not used")),
    exec: () => Promise.reject(new Error("not used")),
    removeContainer: () => Promise.resolve(),
    pids: () => Promise.resolve([]),
    stats: () => Promise.resolve({}),
    update: () => Promise.resolve(),
    onOom: () => undefined,
    destroy: async () => {
      state.destroys++;
      await gate;
      state.destroyed = true;
    },
  };
  return {
    pod,
    release,
    sandbox,
    get destroys() {
      return state.destroys;
    },
    get destroyed() {
      return state.destroyed;
    },
  };
}

/** A sandbox task's bundle (an empty configuration, the CRI sandbox annotation) in a temp dir. */
async function sandboxBundle(prefix: string): Promise<string> {
  const bundle = await mkdtemp(join(tmpdir(), prefix));
  await writeFile(join(bundle, "configuration.toml"), "");
  await writeFile(join(bundle, "config.json"), JSON.stringify({ ociVersion: "1.0.2", annotations: { "io.kubernetes.cri.container-type": "sandbox" } }));
  return bundle;
}

void test("close() waits for the pod teardown a Delete started, and the pod is destroyed once", async () => {
  const bundle = await sandboxBundle("kts-teardown-");
  try {
    const slow = slowPod();
    const factory: PodFactory = { createPod: () => Promise.resolve(slow.pod), cleanupPod: () => Promise.resolve() };
    const svc = new TaskService({ factory, events: { publish: () => undefined }, log: createLogger("test"), configPath: "" });
    const stdio = { stdin: "", stdout: "", stderr: "", terminal: false };
    await svc.create({ id: "sb", bundle, rootfs: [], stdio, configPath: join(bundle, "configuration.toml") });
    slow.sandbox.end(); // the VM went (a lost pod)
    const deleting = svc.delete({ containerId: "sb", execId: "" });
    await new Promise((r) => setImmediate(r));
    assert.equal(slow.destroys, 1, "the Delete started the teardown");
    let closed = false;
    const closing = svc.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(closed, false, "close() does not return while the teardown runs");
    slow.release();
    await Promise.all([deleting, closing]);
    assert.equal(slow.destroyed, true);
    assert.equal(slow.destroys, 1, "one teardown, not two");
  } finally {
    await rm(bundle, { recursive: true, force: true });
  }
});

/** A sandbox bundle and a TaskService whose pod creation runs until it is aborted (then undoes itself). */
async function creatingShim(opts: { podAtAbort?: ReturnType<typeof slowPod> } = {}) {
  const bundle = await sandboxBundle("kts-cutoff-");
  const state = { started: false, undone: false };
  let started!: () => void;
  const creationStarted = new Promise<void>((r) => (started = r));
  const factory: PodFactory = {
    createPod: (req) =>
      new Promise<Pod>((resolve, reject) => {
        state.started = true;
        started();
        req.signal?.addEventListener("abort", () => {
          // The boot notices the abort a moment later and undoes what it set up, or (podAtAbort) has just finished.
          setTimeout(() => {
            if (opts.podAtAbort !== undefined) return resolve(opts.podAtAbort.pod);
            state.undone = true;
            reject(new Error("boot cancelled"));
          }, 30);
        });
      }),
    cleanupPod: () => Promise.resolve(),
  };
  const svc = new TaskService({ factory, events: { publish: () => undefined }, log: createLogger("test"), configPath: "" });
  const stdio = { stdin: "", stdout: "", stderr: "", terminal: false };
  const creating = svc.create({ id: "sb", bundle, rootfs: [], stdio, configPath: join(bundle, "configuration.toml") }).then(
    () => undefined,
    (e: unknown) => e,
  );
  await creationStarted;
  return { svc, state, creating, cleanup: () => rm(bundle, { recursive: true, force: true }) };
}

void test("Delete of a task whose pod is still being created cuts the creation short and answers NOT_FOUND once it is undone; a Shutdown meanwhile is honoured then", async () => {
  const { svc, state, creating, cleanup } = await creatingShim();
  try {
    const deleting = svc.delete({ containerId: "sb", execId: "" }).then(
      () => assert.fail("Delete of a task cut off while creating answers NOT_FOUND"),
      (e: unknown) => e,
    );
    let exits = 0;
    svc.requestShutdown(() => exits++); // containerd's Shutdown, before the Delete has answered
    assert.equal(exits, 0, "no exit while the creation still undoes its work");
    const err = await deleting;
    assert.equal(state.undone, true, "Delete answered only after the creation undid its work");
    assert.match(String((err as Error).message), /deleted while being created/);
    assert.equal((err as { code?: string }).code, "NOT_FOUND");
    assert.ok(await creating, "Create failed");
    assert.equal(svc.containerCount, 0);
    assert.equal(exits, 1, "the deferred Shutdown ran once the shim held no task");
  } finally {
    await cleanup();
  }
});

void test("close() while a pod is being created aborts the creation and returns once it is undone", async () => {
  const { svc, state, creating, cleanup } = await creatingShim();
  try {
    await svc.close();
    assert.equal(state.undone, true);
    assert.ok(await creating, "Create failed");
  } finally {
    await cleanup();
  }
});

void test("a pod that comes up just as its creation is cut off is destroyed, not kept", async () => {
  const late = slowPod();
  late.release();
  const { svc, creating, cleanup } = await creatingShim({ podAtAbort: late });
  try {
    await svc.delete({ containerId: "sb", execId: "" }).catch(() => undefined);
    assert.ok(await creating, "Create failed");
    assert.equal(late.destroys, 1, "the pod nobody owns was destroyed");
    assert.equal(svc.containerCount, 0);
  } finally {
    await cleanup();
  }
});

void test("a Delete whose pod teardown fails still leaves the shim empty: it answers the error, and a Shutdown or the idle exit ends the shim", async () => {
  const bundle = await sandboxBundle("kts-teardown-");
  try {
    const broken = slowPod();
    broken.pod.destroy = () => Promise.reject(new Error("teardown failed for: remove ingress qdisc of eth0"));
    const factory: PodFactory = { createPod: () => Promise.resolve(broken.pod), cleanupPod: () => Promise.resolve() };
    const svc = new TaskService({ factory, events: { publish: () => undefined }, log: createLogger("test"), configPath: "" });
    const stdio = { stdin: "", stdout: "", stderr: "", terminal: false };
    await svc.create({ id: "sb", bundle, rootfs: [], stdio, configPath: join(bundle, "configuration.toml") });
    broken.sandbox.end();
    assert.equal(svc.idleEmptyMs, 0, "a shim holding a task is not idle");
    await assert.rejects(svc.delete({ containerId: "sb", execId: "" }), /remove ingress qdisc/, "containerd hears why");
    assert.equal(svc.containerCount, 0);
    await new Promise((r) => setTimeout(r, 20));
    assert.ok(svc.idleEmptyMs > 0, "the emptied shim counts as idle, so it exits even if no Shutdown comes");
    let exits = 0;
    svc.requestShutdown(() => exits++);
    assert.equal(exits, 1, "a Shutdown ends it");
  } finally {
    await rm(bundle, { recursive: true, force: true });
  }
});
