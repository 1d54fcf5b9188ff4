// The configuration hand-over from `start` to the shim server (src/shim/pod-config.ts): the server
// takes the configuration `start` validated, read from a real pipe, and loads the file itself
// (with the same errors as before) when the hand-over is missing, malformed or for another file.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KataError } from "../../src/util/errors.js";
import { createLogger } from "../../src/util/log.js";
import { podConfig, readPreparedConfig, type PreparedPodConfig } from "../../src/shim/pod-config.js";
import { preparePodConfig } from "../../src/shim/prepare-config.js";

const log = createLogger("test");

/** A real pipe whose write end a child process fills with `text` and closes, as `start` does. */
function pipeFrom(text: string) {
  const child = spawn(process.execPath, ["-e", "process.stdout.end(process.argv[1])", text], { stdio: ["ignore", "pipe", "inherit"] });
  return child.stdout;
}

void test("the server takes start's validated configuration for the same ConfigPath, without reading the file", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kts-podcfg-"));
  try {
    const file = join(dir, "configuration.toml");
    await writeFile(file, "[agent]\ndial_timeout = 42\n[factory]\nenable_pool = false\n");
    const prepared = await preparePodConfig(file);
    assert.equal(prepared.config?.agent.dial_timeout, 42, "start validated the file");
    assert.equal(prepared.source, file);

    const handed = readPreparedConfig(pipeFrom(JSON.stringify(prepared)), log);
    // The file changes after start read it: the server keeps what start validated.
    await writeFile(file, "[agent]\ndial_timeout = 7\n");
    const got = await podConfig(file, handed);
    assert.equal(got.from, "start");
    assert.equal(got.config.agent.dial_timeout, 42);
    assert.equal(got.config.factory.enable_pool, false);
    assert.equal(got.source, file);

    // A Create naming another file: the server loads that one itself.
    const other = join(dir, "other.toml");
    await writeFile(other, "[agent]\ndial_timeout = 9\n");
    const loaded = await podConfig(other, handed);
    assert.equal(loaded.from, "file");
    assert.equal(loaded.config.agent.dial_timeout, 9);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test("without a usable hand-over the server loads the file, and a bad file fails Create as before", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kts-podcfg-"));
  try {
    const bad = join(dir, "bad.toml");
    await writeFile(bad, "[agent]\ndial_timeout = \"soon\"\n");
    // start could not validate it: it hands over the path alone.
    const prepared: PreparedPodConfig = await preparePodConfig(bad);
    assert.equal(prepared.config, undefined);
    for (const text of [JSON.stringify(prepared), "not json", ""]) {
      await assert.rejects(podConfig(bad, readPreparedConfig(pipeFrom(text), log)), (err: unknown) => {
        assert.ok(err instanceof KataError && err.code === "INVALID_ARGUMENT", String(err));
        assert.match(err.message, /bad\.toml: agent\.dial_timeout/, "the error names the file and the key");
        return true;
      });
    }
    const missing = join(dir, "missing.toml");
    await assert.rejects(podConfig(missing, readPreparedConfig(pipeFrom("{}"), log)), /missing\.toml \(from runtime option ConfigPath\) does not exist/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
