// Warm shim servers without VMs (docs/shim.md "Warm servers"): a real pool daemon (`kata-ts pool
// serve`, pool_size 0: no VMs, warm_shims 1) and the shim binary run as containerd 1.6 runs it. A
// pod's `start` is served by the warm server, which becomes what a spawned `serve` would be (cwd,
// stderr on the bundle's log, cgroups, nice value of every thread, oom_score_adj) and answers the
// task API; the pool refills it; a `start` of another build, or with no daemon, spawns `serve`;
// `pool stop` and a SIGKILLed daemon leave no warm server. Nothing may be left.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { access, mkdir, mkdtemp, open, readdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { AnySchema, anyPack } from "@bufbuild/protobuf/wkt";
import { Task } from "../../src/protocol/gen/containerd/task/v2/shim_pb.js";
import { OptionsSchema } from "../../src/protocol/gen/runtimeoptions/v1/api_pb.js";
import { TtrpcClient, TtrpcError, createClient, Code } from "../../src/protocol/ttrpc/index.js";
import { poolPaths, type PoolPaths } from "../../src/pool/layout.js";
import { poolCall, type PoolStatus } from "../../src/pool/protocol.js";
import { cgroupDirsOf } from "../../src/sandbox/host-cgroup.js";
import { socketPath } from "../../src/shim/address.js";
import { run } from "../../src/util/exec.js";

const repoRoot = join(import.meta.dirname, "..", "..", "..");
const shimBin = join(repoRoot, "bin", "containerd-shim-kata-ts-v2");
const cli = join(repoRoot, "bin", "kata-ts.js");

let dir = "";
let stateDir = "";
let configFile = "";
let paths: PoolPaths;
let daemon: { pid: number; exited: Promise<void> } | undefined;
const servers = new Set<number>();

const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);
const statField = async (pid: number, i: number): Promise<number> => Number((await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]?.split(" ")[i]);
const alive = async (pid: number): Promise<boolean> => (await readFile(`/proc/${pid}/stat`, "utf8").catch(() => ") Z")).split(") ")[1]?.startsWith("Z") === false;

async function waitFor(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Shim server processes (warm or serve) whose command line names this test's dir. */
async function shimProcesses(kind: "warm" | "serve"): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const argv = (await readFile(`/proc/${name}/cmdline`, "utf8").catch(() => "")).split("\0");
    if (argv.at(-2) === kind && argv.some((a) => a.startsWith(dir)) && (await alive(Number(name)))) out.push(Number(name));
  }
  return out;
}

async function status(): Promise<PoolStatus | undefined> {
  const res = await poolCall(paths.socket, { op: "status" }, 5000).catch(() => undefined);
  return res?.ok === true ? res.status : undefined;
}

/** A warm server ready (not `except`), by pid. */
async function readyWarm(except = new Set<number>()): Promise<number> {
  let pid = 0;
  await waitFor("a warm shim server ready", 180_000, async () => {
    if (((await status())?.warmShims?.ready ?? 0) < 1) return false;
    pid = (await shimProcesses("warm")).find((p) => !except.has(p) && !servers.has(p)) ?? 0;
    return pid > 0;
  });
  return pid;
}

async function startDaemon(): Promise<void> {
  const log = await open(join(dir, "pool.log"), "a");
  const child = spawn(process.execPath, [cli, "pool", "serve", "--config", configFile], { env: { ...process.env, KATA_TS_STATE_DIR: stateDir }, stdio: ["ignore", log.fd, log.fd], detached: true });
  await log.close();
  daemon = { pid: child.pid ?? 0, exited: new Promise((resolve) => child.once("exit", () => resolve())) };
}

/** Run the shim like containerd: stdout+stderr combined, wait for both pipes to close. */
function runShim(args: string[], cwd: string, stdin: Uint8Array, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(shimBin, args, { cwd, stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, KATA_TS_STATE_DIR: stateDir, TTRPC_ADDRESS: "", ...env } });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`shim ${args.at(-1)} did not close its pipes within 30 s`));
    }, 30_000);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output: out });
    });
    child.stdin.end(stdin);
  });
}

const address = (): string => join(dir, "containerd.sock");
const flags = (id: string): string[] => ["-namespace", "k8s.io", "-address", address(), "-publish-binary", "/usr/bin/containerd", "-id", id];
const options = (): Uint8Array => toBinary(AnySchema, anyPack(OptionsSchema, create(OptionsSchema, { configPath: configFile })));

async function bundle(id: string, annotations: Record<string, string> = {}): Promise<string> {
  const b = join(dir, id);
  await mkdir(b);
  await writeFile(join(b, "config.json"), JSON.stringify({ ociVersion: "1.0.2", annotations: { "io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": id, ...annotations } }));
  return b;
}

/** `start` for a sandbox `id`; returns the pid of the server that answers on its socket. */
async function startPod(id: string, env: NodeJS.ProcessEnv = {}): Promise<{ pid: number; bundle: string; client: TtrpcClient }> {
  const b = await bundle(id);
  const ran = await runShim([...flags(id), "start"], b, options(), env);
  const expected = `unix://${socketPath(address(), "k8s.io", id)}`;
  assert.deepEqual(ran, { code: 0, output: expected }, "start prints the address and nothing else");
  const client = await TtrpcClient.connect(expected, { timeoutMs: 5000 });
  const pid = (await createClient(client, Task).connect({ id }, { timeoutMs: 5000 })).shimPid;
  servers.add(pid);
  return { pid, bundle: b, client };
}

async function shutdown(id: string, pod: { pid: number; client: TtrpcClient }): Promise<void> {
  await createClient(pod.client, Task).shutdown({ id }, { timeoutMs: 5000 }).catch((err: unknown) => {
    if (!(err instanceof TtrpcError && err.status === Code.UNAVAILABLE)) throw err;
  });
  pod.client.close();
  await waitFor(`server ${pod.pid} ends after Shutdown`, 15_000, async () => !(await alive(pod.pid)));
  assert.equal(await exists(socketPath(address(), "k8s.io", id)), false, "its socket is removed");
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "kts-warm-"));
  stateDir = join(dir, "state");
  configFile = join(dir, "configuration.toml");
  paths = poolPaths(join(stateDir, "kata-ts-pool"));
  // Warm servers are the per-pod mode's (the node-level server, the default, needs none).
  await writeFile(configFile, '[agent]\ndial_timeout = 42\n[factory]\npool_size = 0\n[runtime]\nshim_server = "pod"\n');
  await startDaemon();
});

after(async () => {
  if (daemon !== undefined && (await alive(daemon.pid))) {
    process.kill(daemon.pid, "SIGTERM");
    await daemon.exited;
  }
  const left = [...(await shimProcesses("warm")), ...(await shimProcesses("serve"))];
  for (const pid of left) process.kill(pid, "SIGKILL");
  await rm(dir, { recursive: true, force: true });
  assert.deepEqual(left, [], "no shim server left");
});

void test("a pod's start is served by the pool's warm server, which runs where a spawned serve would; the pool refills it; another build's start spawns serve", { timeout: 600_000 }, async () => {
  const warm = await readyWarm();
  assert.equal(await statField(warm, 16), 19, "a warm server waits at the refill priority");
  assert.equal(await statField(warm, 3), warm, "in a session of its own");
  const pod = await startPod("sb");
  assert.equal(pod.pid, warm, "the warm server answers on the pod's socket");
  assert.equal(await readlink(`/proc/${warm}/cwd`), pod.bundle, "its cwd is the bundle");
  assert.equal(await readlink(`/proc/${warm}/fd/2`), join(pod.bundle, "log"), "its stderr is the bundle's log");
  assert.deepEqual(await cgroupDirsOf(warm), await cgroupDirsOf(process.pid), "in start's cgroups (start is this test's child)");
  assert.equal((await readFile(`/proc/${warm}/oom_score_adj`, "utf8")).trim(), (await readFile("/proc/self/oom_score_adj", "utf8")).trim());
  for (const tid of await readdir(`/proc/${warm}/task`)) {
    const nice = Number((await readFile(`/proc/${warm}/task/${tid}/stat`, "utf8")).split(") ")[1]?.split(" ")[16]);
    assert.equal(nice, await statField(process.pid, 16), `thread ${tid} runs at start's nice value`);
  }
  const serving = (await readFile(join(pod.bundle, "log"), "utf8")).split("\n").filter((l) => l.includes("shim serving")).map((l) => JSON.parse(l) as { pid: number; id: string; warm?: boolean });
  assert.deepEqual(serving.map((l) => [l.pid, l.id, l.warm]), [[warm, "sb", true]], "the pod's log says a warm server serves it");

  // The task API as for a spawned server; Create takes the configuration the daemon validated and
  // stops before any VM at the missing network namespace (a hostNetwork pod).
  const task = createClient(pod.client, Task);
  await assert.rejects(task.state({ id: "sb" }), (err: unknown) => err instanceof TtrpcError && err.status === Code.NOT_FOUND);
  await assert.rejects(task.create({ id: "sb", bundle: pod.bundle, options: anyPack(OptionsSchema, create(OptionsSchema, { configPath: configFile })) }, { timeoutMs: 10_000 }), /hostNetwork/);
  const creating = (await readFile(join(pod.bundle, "log"), "utf8")).split("\n").filter((l) => l.includes("creating pod VM")).map((l) => JSON.parse(l) as { config?: string; configFrom?: string });
  assert.deepEqual(creating.map((l) => [l.config, l.configFrom]), [[configFile, "start"]], "the configuration came with the hand-over");

  // An app container of the pod joins the same server.
  const app = join(dir, "app");
  await mkdir(app);
  await writeFile(join(app, "config.json"), JSON.stringify({ ociVersion: "1.0.2", annotations: { "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "sb" } }));
  assert.equal((await runShim([...flags("app"), "start"], app, new Uint8Array())).output, `unix://${socketPath(address(), "k8s.io", "sb")}`);

  const next = await readyWarm(new Set([warm]));
  assert.equal(((await status())?.warmShims?.taken ?? 0), 1, "the pool counts the hand-over");
  // A start of another build (here another KATA_TS_* environment) spawns its server; the warm one stays.
  const other = await startPod("other", { KATA_TS_LOG_LEVEL: "debug" });
  assert.notEqual(other.pid, next);
  assert.ok((await shimProcesses("serve")).includes(other.pid), "a spawned serve");
  assert.deepEqual(await shimProcesses("warm").then((p) => p.filter((x) => x !== warm)), [next], "the warm server is still there, unused");
  await shutdown("other", other);
  await shutdown("sb", pod);
});

void test("pool stop and a SIGKILLed daemon leave no warm server; with no daemon, start spawns serve", { timeout: 600_000 }, async () => {
  assert.ok(daemon);
  const warm = await readyWarm();
  await run(process.execPath, [cli, "pool", "stop"], { env: { ...process.env, KATA_TS_STATE_DIR: stateDir }, timeoutMs: 120_000 });
  await daemon.exited;
  await waitFor("the untaken warm server exits with the stopped pool", 15_000, async () => !(await alive(warm)));
  assert.deepEqual(await shimProcesses("warm"), [], "no warm server left");
  assert.equal(await exists(paths.root), false, "the pool's dir is gone");

  await startDaemon();
  const warm2 = await readyWarm();
  process.kill(daemon.pid, "SIGKILL");
  await daemon.exited;
  await waitFor("the untaken warm server exits with the SIGKILLed daemon", 15_000, async () => !(await alive(warm2)));
  assert.deepEqual(await shimProcesses("warm"), [], "no warm server left");
  await waitFor("the watchdog removes the pool's dir", 30_000, async () => !(await exists(paths.root)));

  const pod = await startPod("alone");
  assert.ok((await shimProcesses("serve")).includes(pod.pid), "no daemon: start spawned serve");
  await shutdown("alone", pod);
});
