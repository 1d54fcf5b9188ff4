// The shim driven by a real containerd 1.6 through `ctr`, exactly as containerd runs runtime v2
// shims (binary found on PATH by runtime type). The shim here is the test entry with a pod of host
// processes (test/harness/host-pod-shim.ts, runtime type io.containerd.kata-ts-hostpod.v2): the
// shim's half - start and its re-exec as serve, delete, Create/Start/Wait/Kill/Delete/Exec/Pids/
// Stats/Shutdown, FIFO IO, events - is checked independently of VMs. Teardown proves nothing is
// left: no shim, no socket, no mount, no directory.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { assertNoLeaks, startContainerd, type PrivateContainerd } from "../harness/containerd.js";
import { HOST_POD_RUNTIME_TYPE, hostPodContainerd } from "../harness/host-pod-runtime.js";
import { BUSYBOX_IMAGE_REF, importTestImages } from "../harness/images.js";
import { run } from "../../src/util/exec.js";
import { isKataError } from "../../src/util/errors.js";

const runtime = HOST_POD_RUNTIME_TYPE;
let ctd: PrivateContainerd | undefined;

before(async () => {
  // The harness puts the test shim on containerd's PATH, where ctr's runtime name finds it.
  ctd = await startContainerd(hostPodContainerd());
  await importTestImages(ctd);
});

after(async () => {
  if (ctd === undefined) return;
  await ctd.stop();
  await assertNoLeaks(ctd);
});

function ctr(args: string[], input?: string): Promise<{ stdout: string; stderr: string }> {
  const c = ctd as PrivateContainerd;
  return run("ctr", ["--address", c.address, "--namespace", "k8s.io", ...args], { timeoutMs: 60_000, input, allowNonZero: false });
}

/** ctr's exit code for a command expected to fail. */
async function exitCodeOf(args: string[]): Promise<number> {
  try {
    await ctr(args);
    return 0;
  } catch (err) {
    assert.ok(isKataError(err));
    return (err.cause as { code?: number }).code ?? -1;
  }
}

void test("shim via ctr: run --rm echo hi prints hi", async () => {
  const out = await ctr(["run", "--runtime", runtime, "--rm", BUSYBOX_IMAGE_REF, "echo1", "echo", "hi"]);
  assert.equal(out.stdout, "hi\n");
});

void test("shim via ctr: task events reach containerd in order", async () => {
  const c = ctd as PrivateContainerd;
  const events = spawn("ctr", ["--address", c.address, "events"], { stdio: ["ignore", "pipe", "ignore"] });
  let text = "";
  events.stdout.on("data", (d: Buffer) => (text += d.toString()));
  try {
    await new Promise((r) => setTimeout(r, 300)); // subscribed before the container starts
    await ctr(["run", "--runtime", runtime, "--rm", BUSYBOX_IMAGE_REF, "ev1", "true"]);
    const deadline = Date.now() + 10_000;
    while (!/\/tasks\/delete.*ev1/.test(text) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  } finally {
    events.kill();
  }
  const topics = text
    .split("\n")
    .filter((l) => l.includes("ev1") && l.includes("/tasks/"))
    .map((l) => /\/tasks\/[a-z-]+/.exec(l)?.[0]);
  assert.deepEqual(topics, ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]);
});

void test("shim via ctr: exit status and stderr come through", async () => {
  const code = await exitCodeOf(["run", "--runtime", runtime, "--rm", BUSYBOX_IMAGE_REF, "exit3", "sh", "-c", "echo err >&2; exit 3"]);
  assert.equal(code, 3);
});

void test("shim via ctr: stdin reaches the container and its EOF ends it", async () => {
  const out = await ctr(["run", "--runtime", runtime, "--rm", BUSYBOX_IMAGE_REF, "cat1", "cat"], "piped\nlines\n");
  assert.equal(out.stdout, "piped\nlines\n");
});

void test("shim via ctr: detached task, exec, ps, metrics, kill, kill again, delete", async () => {
  await ctr(["run", "-d", "--runtime", runtime, BUSYBOX_IMAGE_REF, "long1", "sleep", "1000"]);
  try {
    assert.match((await ctr(["tasks", "ls"])).stdout, /long1\s+\d+\s+RUNNING/);
    assert.equal((await ctr(["tasks", "exec", "--exec-id", "e1", "long1", "echo", "from-exec"])).stdout, "from-exec\n");
    assert.equal(await exitCodeOf(["tasks", "exec", "--exec-id", "e2", "long1", "sh", "-c", "exit 4"]), 4);
    assert.match((await ctr(["tasks", "ps", "long1"])).stdout, /^PID/);
    assert.match((await ctr(["tasks", "metrics", "long1"])).stdout, /pids\.current\s+1/);
    await ctr(["tasks", "kill", "-s", "SIGKILL", "long1"]);
    const deadline = Date.now() + 15_000;
    while (!/long1\s+\d+\s+STOPPED/.test((await ctr(["tasks", "ls"])).stdout)) {
      assert.ok(Date.now() < deadline, "the killed task stops");
      await new Promise((r) => setTimeout(r, 100));
    }
    // A second kill of a finished task is NOT_FOUND, which ctr reports as an error.
    const again = await ctr(["tasks", "kill", "-s", "SIGKILL", "long1"]).then(() => "", (e: unknown) => String(e));
    assert.match(again, /not found/);
    const del = await ctr(["tasks", "delete", "long1"]);
    assert.match(del.stderr, /exit code 137/);
  } finally {
    await ctr(["tasks", "delete", "--force", "long1"]).catch(() => undefined);
    await ctr(["containers", "delete", "long1"]).catch(() => undefined);
  }
});
