// A node-level server that took a dead one's place serves the pod's tasks from what the dead one
// recorded (TaskService.snapshot, kept by the keeper as JSON): the same states, pids and exits;
// a process still running is waited for through the pod's handle on it, and its exit reported;
// one that exited meanwhile answers Wait with its recorded status.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Pod, PodFactory, PodProcess, ProcessExit, ReattachRequest } from "../../src/shim/pod-port.js";
import { TaskService } from "../../src/shim/task-service.js";
import type { TaskEvent } from "../../src/shim/task-events.js";
import { createLogger } from "../../src/util/log.js";

/** A process the test ends by hand. */
function proc(pid: number): PodProcess & { end(status: number): void; started: boolean } {
  let end!: (e: ProcessExit) => void;
  const exited = new Promise<ProcessExit>((r) => (end = r));
  const p = {
    pid,
    started: false,
    start: () => {
      p.started = true;
      return Promise.resolve();
    },
    signal: () => Promise.resolve(),
    wait: () => exited,
    closeStdin: () => Promise.resolve(),
    resizePty: () => Promise.resolve(),
    end: (status: number) => end({ exitStatus: status, exitedAt: new Date() }),
  };
  return p;
}

function fakePod(sandbox: PodProcess, procs: Map<string, ReturnType<typeof proc>>, reattached: string[]): Pod {
  return {
    pid: 4242,
    sandboxProcess: () => sandbox,
    createContainer: (req) => Promise.resolve(procs.get(`${req.id}/`) as PodProcess),
    exec: (req) => Promise.resolve(procs.get(`${req.containerId}/${req.execId}`) as PodProcess),
    reattachProcess: (containerId, execId) => {
      reattached.push(`${containerId}/${execId}`);
      const p = procs.get(`${containerId}/${execId}`);
      return p === undefined ? Promise.reject(new Error("no such process")) : Promise.resolve(p);
    },
    removeContainer: () => Promise.resolve(),
    pids: () => Promise.resolve([]),
    stats: () => Promise.resolve({}),
    update: () => Promise.resolve(),
    onOom: () => undefined,
    destroy: () => Promise.resolve(),
  };
}

async function bundle(root: string, name: string, type: "sandbox" | "container"): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir);
  await writeFile(join(dir, "config.json"), JSON.stringify({ ociVersion: "1.0.2", annotations: { "io.kubernetes.cri.container-type": type, "io.kubernetes.cri.sandbox-id": "sb" }, process: { args: ["x"] } }));
  return dir;
}

void test("restore: a recorded pod's tasks are served again with their states, and exits are reported", async () => {
  const root = await mkdtemp(join(tmpdir(), "kts-restore-"));
  try {
    await writeFile(join(root, "configuration.toml"), "");
    const sbBundle = await bundle(root, "sb", "sandbox");
    const appBundle = await bundle(root, "app", "container");
    const stdio = { stdin: "", stdout: "", stderr: "", terminal: false };
    const configPath = join(root, "configuration.toml");

    // The first server: a sandbox, an app container, two execs (one exits before the crash).
    const first = new Map([
      ["app/", proc(101)],
      ["app/e1", proc(102)],
      ["app/e2", proc(103)],
    ]);
    const factory1: PodFactory = { createPod: () => Promise.resolve(fakePod(proc(4242), first, [])), cleanupPod: () => Promise.resolve() };
    const svc1 = new TaskService({ factory: factory1, events: { publish: () => undefined }, log: createLogger("test"), configPath });
    await svc1.create({ id: "sb", bundle: sbBundle, rootfs: [], stdio, configPath });
    await svc1.start({ containerId: "sb", execId: "" });
    await svc1.create({ id: "app", bundle: appBundle, rootfs: [], stdio, configPath });
    await svc1.start({ containerId: "app", execId: "" });
    for (const e of ["e1", "e2"]) {
      await svc1.exec({ containerId: "app", execId: e, process: {}, stdio });
      await svc1.start({ containerId: "app", execId: e });
    }
    first.get("app/e2")?.end(3);
    await svc1.wait({ containerId: "app", execId: "e2" });
    const recorded = JSON.parse(JSON.stringify(svc1.snapshot())) as unknown;

    // The next server takes the pod over: the processes still running are the pod's again.
    const second = new Map([
      ["app/", proc(101)],
      ["app/e1", proc(102)],
    ]);
    const reattached: string[] = [];
    const requests: ReattachRequest[] = [];
    const pause = proc(4242);
    const factory2: PodFactory = {
      createPod: () => Promise.reject(new Error("a restore boots nothing")),
      reattachPod: async (req) => {
        requests.push(req);
        await pause.start(); // a pod taken over counts its sandbox task started (vm-pod.ts)
        return fakePod(pause, second, reattached);
      },
      cleanupPod: () => Promise.resolve(),
    };
    const events: TaskEvent[] = [];
    const svc2 = new TaskService({ factory: factory2, events: { publish: (e) => events.push(e) }, log: createLogger("test"), configPath });
    await svc2.restore(recorded);

    assert.equal(requests.length, 1, "the pod is taken over once");
    assert.equal(requests[0]?.id, "sb");
    assert.deepEqual(requests[0]?.containers.map((c) => c.id), ["app"], "the app container is named; the sandbox task is the VM itself");
    assert.deepEqual(reattached.sort(), ["app/", "app/e1"], "only the live processes are taken over");
    assert.equal(pause.started, true, "the running sandbox task is running again");
    assert.equal(svc2.state({ containerId: "sb", execId: "" }).status, "running");
    assert.equal(svc2.state({ containerId: "app", execId: "" }).status, "running");
    assert.equal(svc2.state({ containerId: "app", execId: "" }).pid, 101);
    const e2 = svc2.state({ containerId: "app", execId: "e2" });
    assert.equal(e2.status, "stopped");
    assert.equal(e2.exit?.exitStatus, 3, "an exit recorded before the crash is kept");
    assert.equal((await svc2.wait({ containerId: "app", execId: "e2" })).exitStatus, 3);

    // An exit after the take-over is reported as any other.
    second.get("app/e1")?.end(0);
    assert.equal((await svc2.wait({ containerId: "app", execId: "e1" })).exitStatus, 0);
    assert.ok(events.some((e) => e.topic === "/tasks/exit" && e.containerId === "app" && "id" in e && e.id === "e1"), "the exit event is published");
    await svc2.delete({ containerId: "app", execId: "e1" });
    await svc2.delete({ containerId: "app", execId: "e2" });
    await assert.rejects(svc2.restore(recorded), /holds tasks already/, "a server restores a pod once");
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

void test("restore refuses what is not a snapshot of this build", async () => {
  const svc = new TaskService({ factory: { createPod: () => Promise.reject(new Error("no")), cleanupPod: () => Promise.resolve() }, events: { publish: () => undefined }, log: createLogger("test"), configPath: "" });
  await assert.rejects(svc.restore({ version: 99, containers: [] }), /snapshot this build understands/);
  await assert.rejects(svc.restore(undefined), /snapshot this build understands/);
});

void test("a Create cut short by the server's death is named in the record, and its pod is given up rather than taken over", async () => {
  const root = await mkdtemp(join(tmpdir(), "kts-restore-"));
  try {
    await writeFile(join(root, "configuration.toml"), "");
    const sbBundle = await bundle(root, "sb", "sandbox");
    const stdio = { stdin: "", stdout: "", stderr: "", terminal: false };
    const configPath = join(root, "configuration.toml");
    let bootStarted!: () => void;
    const booting = new Promise<void>((r) => (bootStarted = r));
    const records: unknown[] = [];
    // A pod whose VM never finishes booting (the server dies meanwhile).
    const factory: PodFactory = {
      createPod: () => {
        bootStarted();
        return new Promise<never>(() => undefined);
      },
      cleanupPod: () => Promise.resolve(),
    };
    const svc1: TaskService = new TaskService({ factory, events: { publish: () => undefined }, log: createLogger("test"), configPath, onStateChange: () => records.push(JSON.parse(JSON.stringify(svc1.snapshot()))) });
    void svc1.create({ id: "sb", bundle: sbBundle, rootfs: [], stdio, configPath });
    await booting;
    const recorded = records.at(-1) as { containers: unknown[]; creating?: string[] };
    assert.deepEqual(recorded.creating, ["sb"], "the record names the Create in progress before the VM boots");
    assert.deepEqual(recorded.containers, [], "and holds no task for it");

    let reattachCalls = 0;
    const svc2 = new TaskService({
      factory: { createPod: () => Promise.reject(new Error("no")), reattachPod: () => Promise.reject(new Error(`reattached ${++reattachCalls}`)), cleanupPod: () => Promise.resolve() },
      events: { publish: () => undefined },
      log: createLogger("test"),
      configPath,
    });
    await assert.rejects(svc2.restore(recorded), (err: Error) => /creating task\(s\) sb/.test(err.message) && /given up/.test(err.message));
    assert.equal(reattachCalls, 0, "nothing of the half-made pod is taken over");
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
