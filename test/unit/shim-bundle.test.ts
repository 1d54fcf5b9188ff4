// The shim's single-file bundle (src/shim/build-bundle.ts): built from the compiled entry, it runs
// with no dist/ module or npm package beside it, and launchers pick it only when it is newer than
// the tsc output (a tree recompiled by tsc alone must not run a stale bundle).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { buildShimBundle } from "../../src/shim/build-bundle.js";
import { isShimServerCmdline, SHIM_BUNDLE_NAME, shimEntryIn } from "../../src/shim/bundle-path.js";

const run = promisify(execFile);
const shimDir = join(import.meta.dirname, "..", "..", "src", "shim");

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
});
