// The shim's single-file bundle (src/shim/build-bundle.ts): built from the compiled entry, it runs
// with no dist/ module or npm package beside it, and launchers pick it only when it is newer than
// the tsc output (a tree recompiled by tsc alone must not run a stale bundle).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { buildShimBundle } from "../../src/shim/build-bundle.js";
import { isShimServerCmdline, SHIM_BUNDLE_NAME, SHIM_FRONT_NAME, shimEntryIn, shimLauncherEntryIn } from "../../src/shim/bundle-path.js";

const run = promisify(execFile);
const shimDir = join(import.meta.dirname, "..", "..", "src", "shim");
const repoRoot = join(import.meta.dirname, "..", "..", "..");

void test("the bundle is one self-contained CommonJS file that runs the shim", { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), "kts-shim-bundle-"));
  try {
    // Outside the repo: no node_modules or dist modules it could fall back on.
    const out = join(dir, "src", "shim", SHIM_BUNDLE_NAME);
    await buildShimBundle(join(shimDir, "main.js"), out);
    const { stdout } = await run(process.execPath, [out, "-v"], { cwd: dir });
    assert.equal(stdout, "containerd-shim-kata-ts-v2: kata-ts-shim v2\n");
    const bad = await run(process.execPath, [out, "frobnicate"], { cwd: dir }).then(
      () => assert.fail("an unknown action must fail"),
      (err: { code?: number; stderr?: string; stdout?: string }) => err,
    );
    assert.equal(bad.code, 2);
    assert.equal(bad.stdout, "", "nothing on stdout but protocol answers");
    assert.match(bad.stderr ?? "", /unknown action "frobnicate"/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test("launchers run the bundle only when it was built after the tsc output", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kts-shim-entry-"));
  try {
    const main = join(dir, "main.js");
    const bundle = join(dir, SHIM_BUNDLE_NAME);
    await writeFile(main, "");
    assert.equal(shimEntryIn(dir), main, "no bundle: the tsc entry");
    await writeFile(bundle, "");
    await utimes(main, new Date(1_000_000), new Date(1_000_000));
    assert.equal(shimEntryIn(dir), bundle, "bundle built after tsc");
    await utimes(main, new Date(), new Date(Date.now() + 60_000));
    assert.equal(shimEntryIn(dir), main, "tsc ran after the bundle was built: the bundle is stale");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test("a shim server is recognised by its command line, bundled or not", () => {
  assert.ok(isShimServerCmdline(["node", "--max-semi-space-size=1", `/opt/kata-ts/lib/dist/src/shim/${SHIM_BUNDLE_NAME}`, "-id", "x", "serve"]));
  assert.ok(isShimServerCmdline(["node", "/repo/dist/src/shim/main.js", "-id", "x", "serve"]));
  assert.ok(!isShimServerCmdline(["node", "/repo/dist/src/shim/main.js", "-id", "x", "start"]));
  assert.ok(!isShimServerCmdline(["node", "/repo/dist/src/cli/main.js", "pool", "serve"]));
  assert.ok(isShimServerCmdline(["node", "--max-semi-space-size=1", `/repo/dist/src/shim/${SHIM_BUNDLE_NAME}`, "-socket", "/run/kata-ts/kata-ts-pool/warm-1-1.sock", "warm"]), "a warm server the pool keeps");
});

void test("the bin launcher (sh, then CommonJS) runs what shimLauncherEntryIn picks: front entry, bundle or tsc entry", async () => {
  const root = await mkdtemp(join(tmpdir(), "kts-shim-launcher-"));
  try {
    const binShim = join(root, "bin", "shim");
    const dir = join(root, "dist", "src", "shim");
    await mkdir(binShim, { recursive: true });
    await mkdir(dir, { recursive: true });
    // The sh launcher (src/shim/start-sh.ts) runs the Node launcher beside it for all but an app container's start.
    await copyFile(join(repoRoot, "bin", "shim", "containerd-shim-kata-ts-v2"), join(binShim, "containerd-shim-kata-ts-v2"));
    await copyFile(join(repoRoot, "bin", "shim", "launcher.cjs"), join(binShim, "launcher.cjs"));
    await copyFile(join(repoRoot, "bin", "shim", "package.json"), join(binShim, "package.json"));
    await symlink("shim/containerd-shim-kata-ts-v2", join(root, "bin", "containerd-shim-kata-ts-v2"));
    // Each entry says which it is; dated so that each case is unambiguous.
    const files = { "main.js": "main", [SHIM_BUNDLE_NAME]: "bundle", [SHIM_FRONT_NAME]: "front" };
    for (const [name, word] of Object.entries(files)) await writeFile(join(dir, name), `process.stdout.write(${JSON.stringify(word)});\n`);
    const at = async (name: string, s: number): Promise<void> => utimes(join(dir, name), new Date(s * 1000), new Date(s * 1000));
    const ran = async (): Promise<string> => (await run(join(root, "bin", "containerd-shim-kata-ts-v2"), [])).stdout;
    const cases: Array<[number, number, number, string]> = [
      [1000, 2000, 3000, "front"], // npm run build: tsc, bundle, front
      [1000, 3000, 2000, "bundle"], // a front entry older than its bundle is not run
      [3000, 2000, 2000, "main"], // tsc ran after the bundle: both are stale
    ];
    for (const [main, bundle, front, want] of cases) {
      await at("main.js", main);
      await at(SHIM_BUNDLE_NAME, bundle);
      await at(SHIM_FRONT_NAME, front);
      assert.equal(await ran(), want, `main ${main}, bundle ${bundle}, front ${front}`);
      assert.equal(shimLauncherEntryIn(dir), join(dir, Object.entries(files).find(([, w]) => w === want)?.[0] ?? ""), "the same choice as shimLauncherEntryIn");
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
