// kata-ts install/uninstall on files only (no containerd, no restart): the installed tree runs
// (the installed shim answers -v), the containerd drop-in names it, a second install changes
// nothing, uninstall restores config.toml byte for byte and removes the tree, and an unparsable
// config is refused before anything is written.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { access, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { parse } from "smol-toml";
import { installNode, uninstallNode } from "../../src/deploy/node-install.js";
import { isKataError } from "../../src/util/errors.js";

const repoRoot = join(import.meta.dirname, "..", "..", "..");
const cliPath = join(repoRoot, "bin", "kata-ts.js");
const dirs: string[] = [];

async function scratch(): Promise<{ dir: string; root: string; config: string; assets: string; linkDir: string }> {
  const dir = await mkdtemp(join(tmpdir(), "kts-ni-"));
  dirs.push(dir);
  const assets = join(dir, "assets");
  await mkdir(assets);
  // Stand-in assets: the installer copies the directory and only requires manifest.json.
  await writeFile(join(assets, "manifest.json"), '{"kernelRelease":"test"}\n');
  await mkdir(join(dir, "containerd"));
  await mkdir(join(dir, "bin"));
  return { dir, root: join(dir, "opt", "kata-ts"), config: join(dir, "containerd", "config.toml"), assets, linkDir: join(dir, "bin") };
}

const exists = (p: string) => access(p).then(() => true, () => false);

const ORIGINAL = `# operator's config: comments and layout must survive
version = 2
root = "/var/lib/containerd"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
`;

after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

void test("install puts a working runtime under the root and registers it; uninstall restores config.toml byte for byte", async () => {
  const s = await scratch();
  await writeFile(s.config, ORIGINAL);
  const opts = { root: s.root, containerdConfigPath: s.config, shimLinkDir: s.linkDir, restart: "never" as const, sources: { assetsDir: s.assets } };
  const res = await installNode(opts);
  assert.equal(res.artifactsChanged, true);
  assert.equal(res.containerdConfigChanged, true);
  assert.equal(res.restart.restarted, false);
  assert.match(res.restart.message, /restart containerd/);

  // The installed shim runs from the installed tree (its own node, lib, node_modules).
  const { stdout } = await promisify(execFile)(res.shimPath, ["-v"], { timeout: 30_000 });
  assert.match(stdout, /^containerd-shim-kata-ts-v2: /);
  assert.ok(await exists(join(s.root, "share", "assets", "manifest.json")));
  assert.ok(await exists(res.configPath), "default configuration installed");
  // The installed CLI runs too, with the package data it reads (the measured overhead).
  const cli = await promisify(execFile)(join(s.root, "bin", "kata-ts"), ["manifests", "runtimeclass"], { timeout: 30_000 });
  assert.match(cli.stdout, /kind: RuntimeClass/);

  const dropIn = join(s.dir, "containerd", "kata-ts", "cri-runtime.toml");
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed TOML in assertions
  const plugins = parse(await readFile(dropIn, "utf8")).plugins as Record<string, any>;
  const handler = plugins["io.containerd.grpc.v1.cri"].containerd.runtimes["kata-ts"];
  assert.deepEqual({ ...handler, options: { ...handler.options } }, {
    runtime_type: "io.containerd.kata-ts.v2",
    runtime_path: res.shimPath,
    privileged_without_host_devices: true,
    pod_annotations: ["io.katats.*"],
    container_annotations: [],
    options: { ConfigPath: res.configPath },
  });
  assert.equal(plugins["io.containerd.grpc.v1.cri"].sandbox_image, "registry.k8s.io/pause:3.9", "the operator's CRI settings are kept");
  const config = await readFile(s.config, "utf8");
  assert.deepEqual(parse(config).imports, [dropIn]);
  assert.ok(config.startsWith("# operator's config"), "config.toml edited in place, comments kept");

  // Idempotent: nothing to do the second time.
  const again = await installNode(opts);
  assert.equal(again.artifactsChanged, false);
  assert.equal(again.containerdConfigChanged, false);
  assert.equal(await readFile(s.config, "utf8"), config);

  const un = await uninstallNode({ root: s.root, containerdConfigPath: s.config, restart: "never" });
  assert.equal(un.containerdConfig, "backup");
  assert.equal(un.artifactsRemoved, true);
  assert.equal(await readFile(s.config, "utf8"), ORIGINAL, "config.toml restored byte for byte");
  assert.equal(await exists(s.root), false, "install root removed");
  assert.deepEqual(await readdir(s.linkDir), [], "shim link removed");
  assert.deepEqual((await readdir(join(s.dir, "containerd"))).sort(), ["config.toml"]);
  // Uninstall again: nothing left to do, still fine.
  const un2 = await uninstallNode({ root: s.root, containerdConfigPath: s.config, restart: "never" });
  assert.equal(un2.containerdConfig, "untouched");
  assert.equal(un2.artifactsRemoved, false);
});

void test("install refuses an unparsable containerd config and changes nothing", async () => {
  const s = await scratch();
  const broken = 'version = 2\n[plugins."io.containerd.grpc.v1.cri"\n';
  await writeFile(s.config, broken);
  await assert.rejects(
    installNode({ root: s.root, containerdConfigPath: s.config, shimLinkDir: s.linkDir, restart: "never", sources: { assetsDir: s.assets } }),
    (err: unknown) => isKataError(err, "INVALID_ARGUMENT") && /cannot parse containerd config .*nothing was changed/s.test(err.message),
  );
  assert.equal(await readFile(s.config, "utf8"), broken);
  assert.equal(await exists(s.root), false);
  assert.deepEqual(await readdir(join(s.dir, "containerd")), ["config.toml"]);
  assert.deepEqual(await readdir(s.linkDir), []);
});

void test("kata-ts install CLI: clear message and exit 1 on a bad config; usage on a bad flag", async () => {
  const s = await scratch();
  await writeFile(s.config, "version = = 2\n");
  const run = (args: string[]) =>
    promisify(execFile)(process.execPath, [cliPath, ...args], { timeout: 30_000 }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
  const bad = await run(["install", "--root", s.root, "--config", s.config, "--restart", "never", "--shim-link-dir", ""]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^kata-ts install: cannot parse containerd config .*config\.toml.*nothing was changed/s);
  assert.equal(await exists(s.root), false);
  const flag = await run(["install", "--bogus"]);
  assert.equal(flag.code, 2);
  assert.match(flag.stderr, /usage: kata-ts install/);
});
