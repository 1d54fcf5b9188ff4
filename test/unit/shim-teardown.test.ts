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

void test("close() waits for the pod teardown a Delete started, and the pod is destroyed once", async () => {
  const bundle = await mkdtemp(join(tmpdir(), "kts-teardown-"));
  try {
    await writeFile(join(bundle, "configuration.toml"), "");
    await writeFile(join(bundle, "config.json"), JSON.stringify({ ociVersion: "1.0.2", annotations: { "io.kubernetes.cri.container-type": "sandbox" } }));
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
