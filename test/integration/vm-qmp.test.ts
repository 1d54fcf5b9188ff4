// The QMP client against a real QEMU (no guest: microvm paused before it runs, -S): negotiation,
// typed commands, errors with QEMU's class, and the SHUTDOWN event on quit.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { QmpClient, QmpError } from "../../src/hypervisor/qemu/qmp.js";
import { isKataError } from "../../src/util/errors.js";
import { cleanupRoot, exists, processesMentioning, tempRoot } from "./vm-support.js";

let root: string;

before(async () => {
  root = await tempRoot("vm-qmp");
});

after(async () => {
  const leftovers = await processesMentioning(root);
  await cleanupRoot(root);
  assert.deepEqual(leftovers, [], "no QEMU process may outlive the tests");
});

async function pausedQemu(name: string): Promise<{ qemu: ChildProcess; socket: string }> {
  const socket = join(root, `${name}.qmp`);
  const qemu = spawn(
    "qemu-system-x86_64",
    ["-M", "microvm", "-nodefaults", "-no-user-config", "-display", "none", "-S", "-qmp", `unix:${socket},server=on,wait=off`],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  for (let i = 0; i < 200 && !(await exists(socket)); i++) await new Promise((r) => setTimeout(r, 25));
  return { qemu, socket };
}

void test("qmp: negotiates, answers typed query-status/query-version, reports errors with QEMU's class", async () => {
  const { qemu, socket } = await pausedQemu("q1");
  const qmp = await QmpClient.connect(socket, { timeoutMs: 10_000 });
  try {
    assert.deepEqual(await qmp.execute("query-status"), { status: "prelaunch", running: false, singlestep: false });
    const version = await qmp.execute("query-version");
    assert.ok(version.qemu.major >= 7);
    // A command QEMU does not have: QMP's CommandNotFound, as UNIMPLEMENTED.
    const err = await (qmp.execute as (c: string) => Promise<unknown>)("no-such-command").then(
      () => assert.fail("should fail"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof QmpError);
    assert.equal(err.qmpClass, "CommandNotFound");
    assert.equal(err.code, "UNIMPLEMENTED");
    await qmp.execute("cont");
    assert.equal((await qmp.execute("query-status")).running, true);
    await qmp.execute("stop");
    await qmp.waitForEvent("STOP", { timeoutMs: 5000, includePast: true });
  } finally {
    qmp.close();
    qemu.kill("SIGKILL");
    await once(qemu, "exit");
  }
});

void test("qmp: quit answers, emits SHUTDOWN (host-qmp-quit), closes the connection, and QEMU exits 0", async () => {
  const { qemu, socket } = await pausedQemu("q2");
  const exited = once(qemu, "exit");
  const qmp = await QmpClient.connect(socket, { timeoutMs: 10_000 });
  const shutdown = qmp.waitForEvent("SHUTDOWN", { timeoutMs: 10_000 });
  await qmp.execute("quit");
  const event = await shutdown;
  assert.equal(event.data?.reason, "host-qmp-quit");
  assert.equal(event.data?.guest, false);
  await qmp.closed;
  const [code] = await exited;
  assert.equal(code, 0);
  await assert.rejects(qmp.execute("query-status"), (e) => isKataError(e, "UNAVAILABLE"));
});

void test("qmp: a command with no answer fails with DEADLINE_EXCEEDED after its timeout", async () => {
  const { qemu, socket } = await pausedQemu("q3");
  const qmp = await QmpClient.connect(socket, { timeoutMs: 10_000 });
  try {
    // SIGSTOP freezes QEMU: the command is sent but never answered.
    qemu.kill("SIGSTOP");
    await assert.rejects(qmp.execute("query-status", undefined, { timeoutMs: 300 }), (e) => isKataError(e, "DEADLINE_EXCEEDED"));
  } finally {
    qmp.close();
    qemu.kill("SIGKILL");
    await once(qemu, "exit");
  }
});

void test("qmp: connecting to a socket nobody serves fails with UNAVAILABLE", async () => {
  await assert.rejects(QmpClient.connect(join(root, "nothing.sock"), { timeoutMs: 1000 }), (e) => isKataError(e, "UNAVAILABLE"));
});
