// The launchers' sh short path for a CRI app container's `start` (src/shim/start-sh.ts): it answers
// exactly what the Node path answers (the address on stdout and in <bundle>/address) when the pod's
// server listens, and leaves to Node everything it is not sure of. Real sockets in containerd's
// socket dir (/run/containerd/s) under a containerd address of the test's own (a unique hash).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFile } from "node:child_process";
import { APP_CONTAINER_START_SH, shimShLauncher } from "../../src/shim/start-sh.js";
import { shimSocketDir, socketPath } from "../../src/shim/address.js";

const repoRoot = join(import.meta.dirname, "..", "..", "..");
const SANDBOX = "5".repeat(64);
const appAnnotations = { "io.kubernetes.cri.container-name": "web", "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": SANDBOX };

/** Runs `file` as containerd runs the shim: the runtime options on stdin, then EOF. */
function run(file: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { ...opts, encoding: "utf8", timeout: 20_000 }, (err, stdout) => (err === null ? resolve({ stdout }) : reject(err)));
    // containerd's os/exec ignores EPIPE when a shim exits before reading its stdin, and the
    // stand-in for Node here (/bin/echo) never reads it: ignore it the same way.
    child.stdin?.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code !== "EPIPE") reject(err);
    });
    child.stdin?.end("runtime options");
  });
}

async function listen(path: string): Promise<net.Server> {
  const server = net.createServer((c) => c.destroy());
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(path, () => resolve()));
  return server;
}

void test("the repo's launcher carries the short path verbatim", async () => {
  const text = await readFile(join(repoRoot, "bin", "shim", "containerd-shim-kata-ts-v2"), "utf8");
  assert.ok(text.startsWith("#!/bin/sh\n"));
  assert.ok(text.includes(APP_CONTAINER_START_SH.trimEnd()), "bin/shim/containerd-shim-kata-ts-v2 is in step with APP_CONTAINER_START_SH");
});

void test("an app container's start: the short path answers as the Node path does, and leaves the rest to Node", { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), "kts-start-sh-"));
  const address = join(dir, "containerd.sock"); // never listened on: it only names the shim sockets
  const sock = socketPath(address, "k8s.io", SANDBOX);
  assert.equal(sock.startsWith(`${shimSocketDir}/`), true);
  const server = await listen(sock);
  try {
    // "Node" here is a stand-in that says it was run, with its arguments.
    const launcher = join(dir, "launcher");
    await writeFile(launcher, shimShLauncher({ nodePath: "/bin/echo", entry: "NODE" }), { mode: 0o755 });
    const bundle = join(dir, "bundle");
    const start = async (spec: unknown, args: string[] = ["-namespace", "k8s.io", "-address", address, "-publish-binary", "/usr/bin/containerd", "-id", "c1", "start"]): Promise<string> => {
      await rm(bundle, { recursive: true, force: true });
      await mkdir(bundle);
      await writeFile(join(bundle, "config.json"), JSON.stringify(spec));
      return (await run(launcher, args, { cwd: bundle })).stdout;
    };
    const spec = { ociVersion: "1.1.0", process: { args: ["sh"], env: [`X="io.kubernetes.cri.sandbox-id":"${"6".repeat(64)}"`] }, annotations: appAnnotations };
    const uri = `unix://${sock}`;
    assert.equal(await start(spec), uri, "the pod's server listens: answered without Node");
    assert.equal(await readFile(join(bundle, "address"), "utf8"), uri);
    assert.equal(await start(spec, ["-namespace", "k8s.io", "-address", address, "-publish-binary", "/usr/bin/containerd", "-id", "c1", "-debug", "start"]), uri, "-debug too");
    // The Node front entry answers the same.
    const front = join(repoRoot, "dist", "src", "shim", "main.js");
    const node = await run(process.execPath, [front, "-namespace", "k8s.io", "-address", address, "-publish-binary", "/usr/bin/containerd", "-id", "c1", "start"], { cwd: bundle, env: { ...process.env, KATA_TS_POOL: "off" } });
    assert.equal(node.stdout, uri, "the Node path's answer is the same");

    const toNode = async (why: string, s: unknown, args?: string[]): Promise<void> => {
      assert.match(await start(s, args), /^NODE /, `${why}: left to Node`);
    };
    await toNode("a sandbox's start", { ...spec, annotations: { ...appAnnotations, "io.kubernetes.cri.container-type": "sandbox" } });
    await toNode("no CRI annotations", { ...spec, annotations: {} });
    await toNode("a second sandbox-id key elsewhere in the spec", { ...spec, linux: { sysctl: { "io.kubernetes.cri.sandbox-id": "6".repeat(64) } } });
    await toNode("a sandbox id that is not 64 hex digits", { ...spec, annotations: { ...appAnnotations, "io.kubernetes.cri.sandbox-id": "abc" } });
    await toNode("no server listening for that pod", { ...spec, annotations: { ...appAnnotations, "io.kubernetes.cri.sandbox-id": "7".repeat(64) } });
    await toNode("an address path.join would clean", spec, ["-namespace", "k8s.io", "-address", `${dir}//containerd.sock`, "-publish-binary", "b", "-id", "c1", "start"]);
    await toNode("a flag with an inline value", spec, ["-namespace=k8s.io", "-address", address, "-publish-binary", "b", "-id", "c1", "start"]);
    await toNode("another action", spec, ["-namespace", "k8s.io", "-address", address, "-publish-binary", "b", "-id", "c1", "-bundle", bundle, "delete"]);
    await rm(bundle, { recursive: true, force: true });
    await mkdir(bundle);
    await writeFile(join(bundle, "config.json"), JSON.stringify(spec, null, 2));
    assert.match((await run(launcher, ["-namespace", "k8s.io", "-address", address, "-publish-binary", "b", "-id", "c1", "start"], { cwd: bundle })).stdout, /^NODE /, "JSON not in containerd's compact form: left to Node");
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(sock, { force: true });
    await rm(dir, { recursive: true, force: true });
  }
});

void test("the installed launcher exports its environment defaults before running Node, keeping a value already set", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kts-start-sh-env-"));
  try {
    const entry = join(dir, "entry.sh");
    await writeFile(entry, 'printf "%s|%s" "$KATA_TS_ASSETS_DIR" "$*"\n');
    const launcher = join(dir, "launcher");
    await writeFile(launcher, shimShLauncher({ nodePath: "/bin/sh", entry, env: { KATA_TS_ASSETS_DIR: "/opt/kata-ts/share/$assets" } }), { mode: 0o755 });
    const env = { ...process.env };
    delete env.KATA_TS_ASSETS_DIR;
    assert.equal((await run(launcher, ["-v"], { env })).stdout, "/opt/kata-ts/share/$assets|-v");
    assert.equal((await run(launcher, ["-v"], { env: { ...env, KATA_TS_ASSETS_DIR: "/mine" } })).stdout, "/mine|-v");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
