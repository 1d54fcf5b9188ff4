// The installer DaemonSet's image end to end: `kata-ts build-installer-image` writes it, a private
// containerd imports it, and runc containers of it run the image's own `kata-ts install` and
// `kata-ts uninstall` against temp dirs bind-mounted where the DaemonSet mounts the node's
// /etc/containerd, /opt and /usr/local/bin. What the node sees is checked from outside: the
// installed tree, the drop-in and the shim link after install; config.toml byte for byte and
// nothing else after uninstall. kubectl, which the DaemonSet labels its node with, runs too.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseAllDocuments } from "yaml";
import { IMAGE_PACKAGE_DIR } from "../../src/deploy/installer-image.js";
import { defaultInstallerImageRef } from "../../src/deploy/installer-image-ref.js";
import { pathExists } from "../../src/util/fs.js";
import { assertNoLeaks, K8S_NAMESPACE, startContainerd, type PrivateContainerd } from "../harness/containerd.js";

let ctd: PrivateContainerd | undefined;
let scratch = "";
let image: { ref: string; archivePath: string } | undefined;
/** Stand-ins for the node's directories, as the DaemonSet mounts them. */
let node = { etc: "", opt: "", localBin: "" };
let originalConfig = "";

const CLI = `node ${IMAGE_PACKAGE_DIR}/dist/src/cli/main.js`;
const kataTs = join(import.meta.dirname, "..", "..", "..", "bin", "kata-ts.js");

/** Runs this checkout's kata-ts CLI as a user would. */
async function hostCli(...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [kataTs, ...args], { timeout: 300_000, encoding: "utf8" });
  return stdout;
}

/** The ref and archive path `kata-ts build-installer-image` prints. */
function parseBuildOutput(stdout: string): { ref: string; archivePath: string; kept: boolean } {
  const ref = /^ref\s+(\S+)$/m.exec(stdout)?.[1];
  const archive = /^archive\s+(\S+) \((\d+\.\d) MiB(, inputs unchanged: kept)?\)$/m.exec(stdout);
  assert.ok(ref !== undefined && archive !== null, `unexpected output:\n${stdout}`);
  return { ref, archivePath: archive[1] as string, kept: archive[3] !== undefined };
}

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "kts-instimg-"));
  const t0 = Date.now();
  const built = parseBuildOutput(await hostCli("build-installer-image", "--output", join(scratch, "installer.tar")));
  assert.equal(built.kept, false);
  image = built;
  process.stderr.write(`# built ${image.ref} in ${Date.now() - t0} ms\n`);
  ctd = await startContainerd({ kataTs: false });
  await ctd.ctr(["images", "import", "--snapshotter", "overlayfs", image.archivePath], { timeoutMs: 180_000 });
  node = { etc: join(scratch, "etc-containerd"), opt: join(scratch, "opt"), localBin: join(scratch, "usr-local-bin") };
  for (const d of Object.values(node)) await mkdir(d);
  // A real containerd 1.6 config (the harness's own), as the node's config.toml.
  originalConfig = await readFile(ctd.configPath, "utf8");
  await writeFile(join(node.etc, "config.toml"), originalConfig);
});

after(async () => {
  await ctd?.stop();
  if (scratch !== "") await rm(scratch, { recursive: true, force: true });
  if (ctd) await assertNoLeaks(ctd);
});

interface Exit {
  code: number;
  stdout: string;
  stderr: string;
}

/** `ctr run --rm` of the installer image with the node mounts; ctr exits with the container's code. */
function runInImage(script: string): Promise<Exit> {
  assert.ok(ctd && image);
  const bind = (src: string, dst: string) => ["--mount", `type=bind,src=${src},dst=${dst},options=rbind:rw`];
  const args = [
    ...["--address", ctd.address, "--namespace", K8S_NAMESPACE, "run", "--rm", "--snapshotter", "overlayfs"],
    ...bind(node.etc, "/etc/containerd"),
    ...bind(node.opt, "/opt"),
    ...bind(node.localBin, "/host/usr/local/bin"),
    ...[image.ref, `kts-instimg-${randomBytes(4).toString("hex")}`, "/bin/sh", "-c", script],
  ];
  return new Promise((resolve, reject) => {
    execFile("ctr", args, { timeout: 180_000, encoding: "utf8" }, (err, stdout, stderr) => {
      const code = err === null ? 0 : (err as { code?: unknown }).code;
      if (typeof code !== "number") reject(err ?? new Error("ctr gave no exit code"));
      else resolve({ code, stdout, stderr });
    });
  });
}

const list = async (dir: string) => (await readdir(dir)).sort();

void test("the image is what kata-ts manifests runs, and a second build with the same inputs is kept", { timeout: 120_000 }, async () => {
  assert.ok(ctd && image);
  assert.equal(image.ref, defaultInstallerImageRef());
  const docs = parseAllDocuments(await hostCli("manifests", "installer")).map((d) => d.toJS() as { kind: string; spec?: { template: { spec: { containers: Array<{ image: string }> } } } });
  const ds = docs.find((o) => o.kind === "DaemonSet");
  assert.equal(ds?.spec?.template.spec.containers[0]?.image, image.ref);
  const again = parseBuildOutput(await hostCli("build-installer-image", "--output", image.archivePath));
  assert.deepEqual(again, { ...image, kept: true });
  const { stdout } = await ctd.ctr(["images", "ls", "-q"]);
  assert.ok(stdout.split("\n").includes(image.ref), "the archive imports under its ref");
});

void test("the image installs kata-ts on the node's dirs and uninstall restores them", { timeout: 300_000 }, async () => {
  const installed = await runInImage(`set -e; ${CLI} install --restart never --shim-link-dir /host/usr/local/bin`);
  assert.equal(installed.code, 0, `install failed:\n${installed.stdout}${installed.stderr}`);
  assert.match(installed.stdout, /^kata-ts installed in \/opt\/kata-ts /m);
  for (const p of ["bin/node", "bin/containerd-shim-kata-ts-v2", "lib/dist/src/shim/main.js", "share/assets/manifest.json", "share/defaults/configuration.toml"]) {
    assert.ok(await pathExists(join(node.opt, "kata-ts", p)), `/opt/kata-ts/${p} installed`);
  }
  assert.ok(await pathExists(join(node.etc, "kata-ts", "cri-runtime.toml")), "the drop-in is written");
  assert.match(await readFile(join(node.etc, "config.toml"), "utf8"), /\/etc\/containerd\/kata-ts\/cri-runtime\.toml/);
  assert.equal(await readlink(join(node.localBin, "containerd-shim-kata-ts-v2")), "/opt/kata-ts/bin/containerd-shim-kata-ts-v2");

  const removed = await runInImage(`set -e; ${CLI} uninstall --restart never`);
  assert.equal(removed.code, 0, `uninstall failed:\n${removed.stdout}${removed.stderr}`);
  assert.equal(await readFile(join(node.etc, "config.toml"), "utf8"), originalConfig, "config.toml restored byte for byte");
  assert.deepEqual(await list(node.etc), ["config.toml"]);
  assert.deepEqual(await list(node.opt), []);
  assert.deepEqual(await list(node.localBin), []);
});

void test("kubectl runs in the image, and a failing command's exit code comes through", { timeout: 120_000 }, async () => {
  const kubectl = await runInImage("kubectl version --client");
  assert.equal(kubectl.code, 0, kubectl.stderr);
  assert.match(kubectl.stdout, /^Client Version: /m);
  const failing = await runInImage(`${CLI} install --restart sometimes`);
  assert.equal(failing.code, 2, "a usage error exits 2");
});
