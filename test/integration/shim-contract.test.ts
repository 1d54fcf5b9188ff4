// The shim binary's process contract, exercised the way containerd 1.6 drives it (runtime/v2/
// binary.go): `start` with Go flags, cwd = bundle, runtime options on stdin; the detached server
// answering the task API over ttRPC; Shutdown; then `delete`. No VM is involved: only calls that
// need no pod. Nothing may be left: no server process, no socket, nothing in /run/containerd/s.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AnySchema, anyPack } from "@bufbuild/protobuf/wkt";
import { DeleteResponseSchema, Task } from "../../src/protocol/gen/containerd/task/v2/shim_pb.js";
import { OptionsSchema } from "../../src/protocol/gen/runtimeoptions/v1/api_pb.js";
import { TtrpcClient, TtrpcError, createClient, Code } from "../../src/protocol/ttrpc/index.js";
import { shimEntryIn } from "../../src/shim/bundle-path.js";
import { serverMallocEnv } from "../../src/shim/start.js";

const repoRoot = join(import.meta.dirname, "..", "..", "..");
const shimBin = join(repoRoot, "bin", "containerd-shim-kata-ts-v2");

interface Ran {
  code: number | null;
  output: Buffer;
}

/** Run the shim like containerd: stdout+stderr combined, wait for both pipes to close. */
function runShim(args: string[], cwd: string, stdin: Uint8Array, timeoutMs = 20_000): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(shimBin, args, { cwd, stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, TTRPC_ADDRESS: "" } });
    const chunks: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => chunks.push(c));
    child.stderr.on("data", (c: Buffer) => chunks.push(c));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`shim ${args.at(-1)} did not close its pipes within ${timeoutMs} ms (server not detached?)`));
    }, timeoutMs);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output: Buffer.concat(chunks) });
    });
    child.stdin.end(stdin);
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!pidAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !pidAlive(pid);
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(() => true, () => false);
}

async function expectStatus(p: Promise<unknown>, code: number): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof TtrpcError && err.status === code);
}

void test("shim contract: start prints only the address, server answers Connect/State/Shutdown, delete cleans up", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kts-shim-"));
  let serverPid = 0;
  let socket = "";
  let client: TtrpcClient | undefined;
  try {
    const sandboxBundle = join(dir, "sb");
    const appBundle = join(dir, "app");
    const address = join(dir, "containerd.sock");
    await mkdir(sandboxBundle);
    await mkdir(appBundle);
    await writeFile(join(sandboxBundle, "config.json"), JSON.stringify({ ociVersion: "1.0.2", annotations: { "io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": "sb" } }));
    await writeFile(join(appBundle, "config.json"), JSON.stringify({ ociVersion: "1.0.2", annotations: { "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "sb" } }));
    const flags = (id: string) => ["-namespace", "k8s.io", "-address", address, "-publish-binary", "/usr/bin/containerd", "-id", id];
    const configFile = join(dir, "configuration.toml");
    // The per-pod server's contract (test/e2e/node-shim*.test.ts: the node-level server's, the default).
    await writeFile(configFile, '[agent]\ndial_timeout = 42\n[runtime]\nshim_server = "pod"\n');
    const options = toBinary(AnySchema, anyPack(OptionsSchema, create(OptionsSchema, { configPath: configFile })));

    const started = await runShim([...flags("sb"), "start"], sandboxBundle, options);
    const digest = createHash("sha256").update(`${address}/k8s.io/sb`).digest("hex");
    const expected = `unix:///run/containerd/s/${digest}`;
    socket = expected.slice("unix://".length);
    assert.equal(started.output.toString(), expected, "start prints the address and nothing else");
    assert.equal(started.code, 0);
    assert.equal(await readFile(join(sandboxBundle, "address"), "utf8"), expected);

    // An app container of the same pod gets the same shim; no second server.
    const joined = await runShim([...flags("app"), "start"], appBundle, new Uint8Array());
    assert.equal(joined.output.toString(), expected);
    assert.equal(await readFile(join(appBundle, "address"), "utf8"), expected);

    client = await TtrpcClient.connect(expected, { timeoutMs: 5000 });
    const task = createClient(client, Task);
    const connected = await task.connect({ id: "sb" }, { timeoutMs: 5000 });
    serverPid = connected.shimPid;
    assert.ok(serverPid > 0 && serverPid !== process.pid);
    const stat = (await readFile(`/proc/${serverPid}/stat`, "utf8")).split(") ")[1]?.split(" ") ?? [];
    assert.equal(Number(stat[3]), serverPid, "the server leads its own session (detached from containerd)");
    const cmdline = (await readFile(`/proc/${serverPid}/cmdline`, "utf8")).split("\0");
    assert.equal(cmdline.at(-2), "serve");
    assert.ok(cmdline.includes(configFile), "ConfigPath from start's stdin reaches the server");
    assert.deepEqual(cmdline.slice(1, 2), ["--max-semi-space-size=1"], "the server runs with the small-heap V8 flags (docs/shim.md)");
    // The environment the server started with (/proc keeps it; the server drops these before it spawns anything).
    const environ = (await readFile(`/proc/${serverPid}/environ`, "utf8")).split("\0");
    for (const [k, v] of Object.entries(serverMallocEnv)) assert.ok(environ.includes(`${k}=${v}`), `the server runs with ${k}=${v} (docs/shim.md)`);
    assert.equal(cmdline[2], shimEntryIn(join(repoRoot, "dist", "src", "shim")), "the server is the script the launcher chose (the bundle once built)");

    // Nothing was created: gone is NOT_FOUND (Pause too), unsupported is UNIMPLEMENTED.
    await expectStatus(task.state({ id: "sb" }), Code.NOT_FOUND);
    await expectStatus(task.kill({ id: "sb", signal: 9 }), Code.NOT_FOUND);
    await expectStatus(task.delete({ id: "sb" }), Code.NOT_FOUND);
    await expectStatus(task.wait({ id: "sb" }), Code.NOT_FOUND);
    await expectStatus(task.pause({ id: "sb" }), Code.NOT_FOUND);
    await expectStatus(task.checkpoint({ id: "sb" }), Code.UNIMPLEMENTED);

    // A pod's Create takes the configuration start validated (the server loads no schema): this
    // one stops before any VM, at the sandbox spec's missing network namespace (a hostNetwork pod).
    await assert.rejects(task.create({ id: "sb", bundle: sandboxBundle, options: anyPack(OptionsSchema, create(OptionsSchema, { configPath: configFile })) }, { timeoutMs: 10_000 }), /hostNetwork/);
    const creating = (await readFile(join(sandboxBundle, "log"), "utf8")).split("\n").filter((l) => l.includes("creating pod VM")).map((l) => JSON.parse(l) as { config?: string; configFrom?: string });
    assert.deepEqual(creating.map((l) => [l.config, l.configFrom]), [[configFile, "start"]], "the configuration came from start");
    await expectStatus(task.state({ id: "sb" }), Code.NOT_FOUND);

    await task.shutdown({ id: "sb" }, { timeoutMs: 5000 }).catch((err: unknown) => {
      // The server may close the connection as it exits; only a clean answer or UNAVAILABLE is fine.
      if (!(err instanceof TtrpcError && err.status === Code.UNAVAILABLE)) throw err;
    });
    assert.ok(await waitGone(serverPid, 10_000), "Shutdown with no containers ends the server");
    assert.equal(await exists(expected.slice("unix://".length)), false, "the socket is removed");

    const deleted = await runShim([...flags("sb"), "-bundle", sandboxBundle, "delete"], dir, new Uint8Array());
    assert.equal(deleted.code, 0, deleted.output.toString());
    const resp = fromBinary(DeleteResponseSchema, deleted.output);
    assert.equal(resp.exitStatus, 137);
    assert.ok(resp.exitedAt !== undefined && resp.exitedAt.seconds > 0n);
  } finally {
    client?.close();
    if (serverPid > 0 && pidAlive(serverPid)) process.kill(serverPid, "SIGKILL");
    await rm(dir, { recursive: true, force: true });
  }
  // Only this test's socket: other containerds on the host may add theirs meanwhile.
  assert.equal(socket !== "" && (await exists(socket)), false, "no shim socket left");
  assert.equal(serverPid > 0 && pidAlive(serverPid), false, "no shim server left");
});

void test("shim contract: start fails loudly, with nothing on stdout but the error, for a bad bundle", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kts-shim-"));
  try {
    const r = await runShim(["-namespace", "ns", "-address", join(dir, "c.sock"), "-id", "x", "start"], dir, new Uint8Array());
    assert.equal(r.code, 1);
    assert.match(r.output.toString(), /config\.json/);
    const bad = await runShim(["-bogus", "start"], dir, new Uint8Array());
    assert.equal(bad.code, 1);
    assert.match(bad.output.toString(), /-bogus/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
