// `kata-ts containerd install|uninstall` as an operator runs it.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { packagedShimPath, packageRoot } from "../../src/deploy/paths.js";
import { run } from "../../src/util/exec.js";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const cli = (args: string[]) => run(process.execPath, [join(packageRoot(), "bin", "kata-ts.js"), "containerd", ...args], { allowNonZero: true, timeoutMs: 30_000 });

void test("kata-ts containerd install then uninstall leaves config.toml as it was", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kts-cli-"));
  dirs.push(dir);
  const config = join(dir, "config.toml");
  const original = 'version = 2\n\n[plugins."io.containerd.grpc.v1.cri".cni]\n  bin_dir = "/usr/lib/cni"\n';
  await writeFile(config, original);
  // --shim-link-dir into the temp dir: the test must not touch the host's /usr/local/bin.
  const args = ["install", "--config", config, "--kata-config", "/etc/kata-ts/configuration.toml", "--shim-link-dir", dir];
  const inst = await cli(args);
  assert.match(inst.stdout, /kata-ts handler installed: drop-in .*cri-runtime\.toml; restart containerd/);
  const dropIn = await readFile(join(dir, "kata-ts", "cri-runtime.toml"), "utf8");
  assert.ok(dropIn.includes(`runtime_path = "${packagedShimPath()}"`), dropIn);
  assert.equal(await readlink(join(dir, "containerd-shim-kata-ts-v2")), packagedShimPath());
  assert.match((await cli(args)).stdout, /already installed/);
  assert.match((await cli(["uninstall", "--config", config])).stdout, /removed \(config.toml: backup\)/);
  assert.equal(await readFile(config, "utf8"), original);
  assert.deepEqual(await readdir(dir), ["config.toml"]);
});

void test("kata-ts containerd install refuses a broken config and says which file", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kts-cli-"));
  dirs.push(dir);
  const config = join(dir, "config.toml");
  await writeFile(config, "version = 2\nimports = [\n");
  const res = await cli(["install", "--config", config, "--shim-link-dir", dir]);
  assert.match(res.stderr, new RegExp(`kata-ts containerd install: cannot parse containerd config ${config}`));
  assert.equal(await readFile(config, "utf8"), "version = 2\nimports = [\n");
});
