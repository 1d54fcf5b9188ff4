// The agent's container manager against the real crun on this host (no VM): exit codes, signals,
// stdio, exec, env/cwd/user, terminal mode and the lifecycle's typed errors.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { isKataError } from "../../src/util/errors.js";
import { drain, makeFixture, specFor, type Fixture } from "./agent-container-fixture.js";

let fx: Fixture;
let n = 0;

before(async () => {
  fx = await makeFixture();
});

after(async () => {
  await fx.cleanup();
  assert.equal(existsSync(fx.dir), false, "temp dir removed");
  // No container process of ours survives: nothing runs from our rootfs.
  const ps = execFileSync("ps", ["-eo", "args"], { encoding: "utf8" });
  assert.equal(ps.includes(fx.dir), false, "no crun/container process left");
});

async function runToEnd(args: string[], over: Parameters<typeof specFor>[1] = {}, stdin?: string) {
  const id = `t${++n}`;
  const m = fx.manager;
  await m.createContainer({ containerId: id, specJson: JSON.stringify(specFor(args, over)), rootfs: fx.rootfs, openStdin: stdin !== undefined, sandboxPidns: false });
  await m.startContainer(id);
  if (stdin !== undefined) {
    await m.writeStdin(id, "", Buffer.from(stdin));
    m.closeStdin(id, "");
  }
  const [out, err, exit] = await Promise.all([
    drain((len) => m.readStdout(id, "", len)),
    drain((len) => m.readStderr(id, "", len)),
    m.waitProcess(id, "", AbortSignal.timeout(60_000)),
  ]);
  await m.removeContainer(id, false);
  return { out: out.toString(), err: err.toString(), status: exit.status, raw: out };
}

void test("exit codes 0 and 3 reach the caller", async () => {
  assert.equal((await runToEnd(["true"])).status, 0);
  assert.equal((await runToEnd(["sh", "-c", "exit 3"])).status, 3);
});

void test("stdout and stderr stay apart and complete (1 MiB intact)", async () => {
  const r = await runToEnd(["sh", "-c", "yes 0123456789abcdef | head -c 1048576; echo to-stderr >&2"]);
  assert.equal(r.status, 0);
  assert.equal(r.raw.length, 1048576);
  assert.ok(r.raw.equals(Buffer.from("0123456789abcdef\n".repeat(61681)).subarray(0, 1048576)));
  assert.equal(r.err, "to-stderr\n");
});

void test("stdin reaches the process and is echoed back", async () => {
  const r = await runToEnd(["cat"], {}, "hello stdin\nsecond line\n");
  assert.equal(r.out, "hello stdin\nsecond line\n");
  assert.equal(r.status, 0);
});

void test("env, cwd and user are honoured", async () => {
  const r = await runToEnd(["sh", "-c", "echo $GREETING; pwd; id -u; id -g"], { env: ["PATH=/bin", "GREETING=hi there"], cwd: "/tmp", uid: 1000, gid: 1000 });
  assert.equal(r.out, "hi there\n/tmp\n1000\n1000\n");
});

void test("SIGKILL to the init process gives 137; exec'd process killed by SIGTERM gives 143", async () => {
  const m = fx.manager;
  const id = `t${++n}`;
  await m.createContainer({ containerId: id, specJson: JSON.stringify(specFor(["sleep", "1000"])), rootfs: fx.rootfs, openStdin: false, sandboxPidns: false });
  const { pid } = await m.startContainer(id);
  assert.ok(pid > 0);
  assert.equal((await m.getContainerState(id)), "running");

  const ex = await m.execProcess({ containerId: id, execId: "e1", process: { args: ["sleep", "1000"], cwd: "/", user: { uid: 0, gid: 0 }, env: ["PATH=/bin"] }, terminal: false, openStdin: false });
  assert.ok(ex.pid > 0);
  await m.signalProcess(id, "e1", 15, false);
  assert.equal((await m.waitProcess(id, "e1", AbortSignal.timeout(30_000))).status, 143);

  await m.signalProcess(id, "", 9, false);
  assert.equal((await m.waitProcess(id, "", AbortSignal.timeout(30_000))).status, 137);
  assert.equal(m.getContainerState(id), "stopped");
  // A gone process answers NOT_FOUND (containerd treats that as done).
  await assert.rejects(m.signalProcess(id, "", 9, false), (e) => isKataError(e, "NOT_FOUND"));
  await m.removeContainer(id, false);
});

void test("exec into a running container: output, exit code, env/cwd/user of the exec", async () => {
  const m = fx.manager;
  const id = `t${++n}`;
  await m.createContainer({ containerId: id, specJson: JSON.stringify(specFor(["sleep", "1000"])), rootfs: fx.rootfs, openStdin: false, sandboxPidns: false });
  await m.startContainer(id);
  await m.execProcess({
    containerId: id,
    execId: "probe",
    process: { args: ["sh", "-c", "echo $X; pwd; id -u; cat; exit 7"], cwd: "/home/user", user: { uid: 1000, gid: 1000 }, env: ["PATH=/bin", "X=from-exec"] },
    terminal: false,
    openStdin: true,
  });
  await m.writeStdin(id, "probe", Buffer.from("piped\n"));
  m.closeStdin(id, "probe");
  const out = await drain((len) => m.readStdout(id, "probe", len));
  assert.equal(out.toString(), "from-exec\n/home/user\n1000\npiped\n");
  assert.equal((await m.waitProcess(id, "probe", AbortSignal.timeout(30_000))).status, 7);
  await assert.rejects(
    m.execProcess({ containerId: id, execId: "probe", process: { args: ["true"], cwd: "/", user: { uid: 0, gid: 0 } }, terminal: false, openStdin: false }),
    (e) => isKataError(e, "ALREADY_EXISTS"),
  );
  await assert.rejects(m.removeContainer(id, false), (e) => isKataError(e, "FAILED_PRECONDITION"));
  await m.removeContainer(id, true);
  assert.throws(() => m.get(id), (e) => isKataError(e, "NOT_FOUND"));
});

void test("terminal mode: the process gets a tty, window size can be set, exit code kept", async () => {
  const m = fx.manager;
  const id = `t${++n}`;
  const spec = specFor(["sh", "-c", "tty; read x; stty size; exit 4"], { terminal: true });
  await m.createContainer({ containerId: id, specJson: JSON.stringify(spec), rootfs: fx.rootfs, openStdin: true, sandboxPidns: false });
  await m.startContainer(id);
  // Wait for the first line so that the size is set before `stty size` runs.
  let seen = "";
  while (!seen.includes("\n")) seen += (await m.readStdout(id, "", 4096)).data.toString();
  await m.resize(id, "", 33, 111);
  await m.writeStdin(id, "", Buffer.from("go\r"));
  const rest = await drain((len) => m.readStdout(id, "", len));
  const all = seen + rest.toString();
  assert.match(all, /\/dev\/pts\/0/);
  assert.match(all, /33 111/);
  assert.equal((await m.waitProcess(id, "", AbortSignal.timeout(30_000))).status, 4);
  await m.removeContainer(id, false);
});

void test("lifecycle errors are typed: double start, exec into a stopped container, unknown ids", async () => {
  const m = fx.manager;
  const id = `t${++n}`;
  await m.createContainer({ containerId: id, specJson: JSON.stringify(specFor(["true"])), rootfs: fx.rootfs, openStdin: false, sandboxPidns: false });
  await assert.rejects(m.createContainer({ containerId: id, specJson: "{}", rootfs: fx.rootfs, openStdin: false, sandboxPidns: false }), (e) => isKataError(e, "ALREADY_EXISTS"));
  await m.startContainer(id);
  await m.waitProcess(id, "", AbortSignal.timeout(30_000));
  await assert.rejects(m.startContainer(id), (e) => isKataError(e, "FAILED_PRECONDITION"));
  await assert.rejects(
    m.execProcess({ containerId: id, execId: "x", process: { args: ["true"], cwd: "/", user: { uid: 0, gid: 0 } }, terminal: false, openStdin: false }),
    (e) => isKataError(e, "FAILED_PRECONDITION"),
  );
  await assert.rejects(m.startContainer("nope"), (e) => isKataError(e, "NOT_FOUND"));
  await assert.rejects(m.createContainer({ containerId: "bad/id", specJson: "{}", rootfs: fx.rootfs, openStdin: false, sandboxPidns: false }), (e) => isKataError(e, "INVALID_ARGUMENT"));
  await assert.rejects(
    m.createContainer({ containerId: "noargs", specJson: JSON.stringify({ ...specFor(["x"]), process: { args: [], cwd: "/", user: { uid: 0, gid: 0 } } }), rootfs: fx.rootfs, openStdin: false, sandboxPidns: false }),
    (e) => isKataError(e, "INVALID_ARGUMENT"),
  );
  await m.removeContainer(id, false);
  // crun kept no record of any container.
  assert.deepEqual(readdirSync(fx.crunRoot).filter((f) => !f.startsWith(".")), []);
});

void test("a missing command fails at start with crun's reason and exit status", async () => {
  const r = await runToEnd(["/bin/does-not-exist"]).catch((e: unknown) => e);
  assert.ok(isKataError(r, "FAILED_PRECONDITION"), String(r));
  assert.match(r.message, /does-not-exist.*not found/);
  for (const id of fx.manager.ids()) await fx.manager.removeContainer(id, true);
});
