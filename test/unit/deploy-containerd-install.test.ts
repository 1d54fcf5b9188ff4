// The node installer's containerd step on real files in a temp dir, and containerd 1.6's own
// `config dump` as the judge of what the resulting configuration means.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, readdir, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "smol-toml";
import { installContainerdHandler, installPaths, uninstallContainerdHandler } from "../../src/deploy/containerd-install.js";
import { isKataError } from "../../src/util/errors.js";
import { run } from "../../src/util/exec.js";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function scratch(configText?: string): Promise<{ dir: string; config: string }> {
  const dir = await mkdtemp(join(tmpdir(), "kts-deploy-"));
  dirs.push(dir);
  const config = join(dir, "config.toml");
  if (configText !== undefined) await writeFile(config, configText);
  return { dir, config };
}

const DEBIAN_DEFAULT = `version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
`;

const WITH_RUNTIMES = `version = 2
# operator's node config
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.example/pause:3.9"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun.options]
        BinaryName = "/usr/bin/crun"
`;

const handler = { runtimePath: "/opt/kata-ts/bin/containerd-shim-kata-ts-v2", kataConfigPath: "/etc/kata-ts/configuration.toml" };

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function dumpCri(config: string): Promise<Obj> {
  const { stdout } = await run("containerd", ["--config", config, "config", "dump"], { timeoutMs: 20_000 });
  return (parse(stdout) as Obj).plugins["io.containerd.grpc.v1.cri"] as Obj;
}

void test("install adds only an imports entry, and uninstall restores the file byte for byte", async () => {
  const { config } = await scratch(DEBIAN_DEFAULT);
  const res = await installContainerdHandler({ containerdConfigPath: config, ...handler });
  assert.deepEqual(res, {
    configChanged: true,
    dropInChanged: true,
    shimLinkChanged: false,
    dropInPath: installPaths({ containerdConfigPath: config }).dropInPath,
  });
  const installed = await readFile(config, "utf8");
  assert.equal(installed, DEBIAN_DEFAULT.replace("version = 2\n", `version = 2\nimports = ["${res.dropInPath}"] # added by kata-ts install\n`));

  const again = await installContainerdHandler({ containerdConfigPath: config, ...handler });
  assert.deepEqual([again.configChanged, again.dropInChanged], [false, false]);
  assert.equal(await readFile(config, "utf8"), installed);

  assert.deepEqual(await uninstallContainerdHandler({ containerdConfigPath: config }), { config: "backup", dropInPath: res.dropInPath });
  assert.equal(await readFile(config, "utf8"), DEBIAN_DEFAULT);
  assert.deepEqual(await readdir(join(config, "..")), ["config.toml"], "drop-in, backup and state are gone");
});

void test("containerd sees the kata-ts handler and keeps the operator's CRI settings and runtimes", async () => {
  const { config } = await scratch(WITH_RUNTIMES);
  await installContainerdHandler({ containerdConfigPath: config, ...handler });
  const cri = await dumpCri(config);
  assert.equal(cri.sandbox_image, "registry.example/pause:3.9");
  assert.equal(cri.restrict_oom_score_adj, true);
  const runtimes = cri.containerd.runtimes as Obj;
  assert.deepEqual(Object.keys(runtimes).sort(), ["crun", "kata-ts", "runc"]);
  assert.equal(runtimes.runc.options.BinaryName, "/usr/sbin/runc");
  const kata = runtimes["kata-ts"] as Obj;
  assert.equal(kata.runtime_type, "io.containerd.kata-ts.v2");
  assert.equal(kata.runtime_path, handler.runtimePath);
  assert.equal(kata.privileged_without_host_devices, true);
  assert.deepEqual(kata.pod_annotations, ["io.katats.*"]);
  assert.equal(kata.options.ConfigPath, handler.kataConfigPath);
  await uninstallContainerdHandler({ containerdConfigPath: config });
  assert.equal(await readFile(config, "utf8"), WITH_RUNTIMES);
});

void test("with containerd's built-in defaults (Debian config) runc stays the default runtime", async () => {
  const { config } = await scratch(DEBIAN_DEFAULT);
  await installContainerdHandler({ containerdConfigPath: config, ...handler });
  const cri = await dumpCri(config);
  assert.equal(cri.containerd.default_runtime_name, "runc");
  assert.equal(cri.containerd.runtimes.runc.runtime_type, "io.containerd.runc.v2");
  assert.equal(cri.cni.bin_dir, "/usr/lib/cni");
});

void test("an earlier import's CRI section is the base of the drop-in, as containerd would merge it", async () => {
  const { dir, config } = await scratch('version = 2\nimports = ["conf.d/*.toml"]\n');
  await mkdir(join(dir, "conf.d"));
  await writeFile(join(dir, "conf.d", "10-cri.toml"), 'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "from-import/pause:1"\n');
  await installContainerdHandler({ containerdConfigPath: config, ...handler });
  const cri = await dumpCri(config);
  assert.equal(cri.sandbox_image, "from-import/pause:1");
  assert.ok(cri.containerd.runtimes["kata-ts"]);
});

void test("a config that does not parse is refused with the file and the error, and nothing changes", async () => {
  const broken = 'version = 2\n[plugins."io.containerd.grpc.v1.cri"\n  sandbox_image = 1\n';
  const { dir, config } = await scratch(broken);
  await assert.rejects(installContainerdHandler({ containerdConfigPath: config, ...handler }), (err: unknown) => {
    assert.ok(isKataError(err, "INVALID_ARGUMENT"));
    assert.match(err.message, new RegExp(`cannot parse containerd config ${config}: .+nothing was changed`, "s"));
    return true;
  });
  assert.equal(await readFile(config, "utf8"), broken);
  assert.deepEqual(await readdir(dir), ["config.toml"]);
});

void test("a version 1 config is refused with a clear message", async () => {
  const { config } = await scratch('[plugins.cri]\n  sandbox_image = "x"\n');
  await assert.rejects(installContainerdHandler({ containerdConfigPath: config, ...handler }), /version 1;.*version 2 or 3/);
});

void test("a missing config.toml is created for the handler and removed again by uninstall", async () => {
  const { dir, config } = await scratch();
  await installContainerdHandler({ containerdConfigPath: config, ...handler });
  assert.ok((await dumpCri(config)).containerd.runtimes["kata-ts"]);
  assert.deepEqual(await uninstallContainerdHandler({ containerdConfigPath: config }), { config: "removed", dropInPath: installPaths({ containerdConfigPath: config }).dropInPath });
  assert.deepEqual(await readdir(dir), []);
});

void test("uninstall after the operator edited config.toml removes only the import", async () => {
  const { config } = await scratch(DEBIAN_DEFAULT);
  await installContainerdHandler({ containerdConfigPath: config, ...handler });
  const edited = `${await readFile(config, "utf8")}[debug]\n  level = "debug"\n`;
  await writeFile(config, edited);
  assert.equal((await uninstallContainerdHandler({ containerdConfigPath: config })).config, "edited");
  assert.equal(await readFile(config, "utf8"), `${DEBIAN_DEFAULT}[debug]\n  level = "debug"\n`);
});

void test("the shim is linked into a PATH dir (containerd 1.6 ignores runtime_path) and unlinked on uninstall", async () => {
  const { dir, config } = await scratch(DEBIAN_DEFAULT);
  const binDir = join(dir, "bin");
  await mkdir(binDir);
  const res = await installContainerdHandler({ containerdConfigPath: config, shimLinkDir: binDir, ...handler });
  assert.equal(res.shimLinkChanged, true);
  assert.equal(await readlink(join(binDir, "containerd-shim-kata-ts-v2")), handler.runtimePath);
  assert.equal((await installContainerdHandler({ containerdConfigPath: config, shimLinkDir: binDir, ...handler })).shimLinkChanged, false);
  await uninstallContainerdHandler({ containerdConfigPath: config });
  assert.deepEqual(await readdir(binDir), []);
  assert.equal(await readFile(config, "utf8"), DEBIAN_DEFAULT);
});

void test("an unrelated containerd-shim-kata-ts-v2 on PATH is not replaced", async () => {
  const { dir, config } = await scratch(DEBIAN_DEFAULT);
  await writeFile(join(dir, "containerd-shim-kata-ts-v2"), "#!/bin/sh\n");
  await assert.rejects(installContainerdHandler({ containerdConfigPath: config, shimLinkDir: dir, ...handler }), /already exists.*nothing was changed/);
  assert.equal(await readFile(config, "utf8"), DEBIAN_DEFAULT);
});
