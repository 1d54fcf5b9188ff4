// `start` decides between a per-pod server and the node-level one before it loads the
// configuration: peekShimServer must read the same file load.ts would, and never fail a start
// over a file the full load will refuse with a better message.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { peekShimServer } from "../../src/config/peek.js";
import { loadConfig } from "../../src/config/load.js";

void test("peekShimServer reads [runtime] shim_server from the file the load would read, and the environment wins", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kata-peek-"));
  try {
    const node = join(dir, "node.toml");
    const pod = join(dir, "pod.toml");
    const unset = join(dir, "unset.toml");
    const broken = join(dir, "broken.toml");
    await writeFile(node, '[runtime]\nshim_server = "node"\n');
    await writeFile(pod, '[runtime]\nshim_server = "pod"\n');
    await writeFile(unset, "[runtime]\ndebug = true\n");
    await writeFile(broken, "[runtime\n");
    const env = {};
    assert.equal(await peekShimServer(node, env), "node");
    assert.equal(await peekShimServer(pod, env), "pod");
    assert.equal(await peekShimServer(unset, env), "node", "unset is the node-level server");
    assert.equal(await peekShimServer(broken, env), "node", "a file the load refuses: the load says why, at Create");
    assert.equal(await peekShimServer(join(dir, "missing.toml"), env), "node");
    assert.equal(await peekShimServer("", { KATA_TS_CONFIG: pod }), "pod", "KATA_TS_CONFIG as load.ts reads it");
    assert.equal(await peekShimServer(node, { KATA_TS_SHIM_SERVER: "pod" }), "pod", "the environment overrides the file");
    assert.equal(await peekShimServer(pod, { KATA_TS_SHIM_SERVER: "node" }), "node");
    // The full load agrees with the peek, and takes the same override.
    assert.equal((await loadConfig({ configPath: pod, env })).config.runtime.shim_server, "pod");
    assert.equal((await loadConfig({ configPath: unset, env })).config.runtime.shim_server, "node");
    assert.equal((await loadConfig({ configPath: node, env: { KATA_TS_SHIM_SERVER: "pod" } })).config.runtime.shim_server, "pod");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
