// How the pool daemon is started and configured (src/pool/owner.ts, src/pool/prepared-config.ts):
// its node flags and environment, and its configuration validated in a child process (zod stays
// out of the long-lived daemon) and validated again only when a file it was read from changed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { getPriority, tmpdir } from "node:os";
import { join } from "node:path";
import { poolDaemonNodeFlags, poolDaemonSpawn } from "../../src/pool/owner.js";
import { cachedPrepare, prepareInChild, type PreparedConfig } from "../../src/pool/prepared-config.js";
import { SERVER_ENV_SET_ENV } from "../../src/shim/flags.js";
import { dropOwnMallocEnv, serverMallocEnv, serverNodeFlags } from "../../src/shim/server-env.js";
import { isKataError } from "../../src/util/errors.js";

void test("the pool daemon starts as a shim server does: its V8 flags, and glibc's trim settings for itself alone", () => {
  assert.deepEqual(poolDaemonNodeFlags, serverNodeFlags);
  const how = poolDaemonSpawn("/etc/x.toml", { PATH: "/usr/bin" });
  assert.deepEqual(how.args.slice(1), ["pool", "serve", "--config", "/etc/x.toml"]);
  assert.match(how.args[0] ?? "", /bin\/kata-ts\.js$/);
  assert.deepEqual(poolDaemonSpawn("", {}).args.slice(1), ["pool", "serve"], "no --config for the default search");
  for (const [k, v] of Object.entries(serverMallocEnv)) assert.equal(how.env[k], v);
  assert.equal(how.env.PATH, "/usr/bin");
  // What `pool serve` does first: its QEMUs and virtiofsds get glibc's defaults.
  const env = { ...how.env };
  dropOwnMallocEnv(env);
  assert.deepEqual(env, { PATH: "/usr/bin" });
  // A value the shim's environment sets already is kept, for the daemon's children too.
  const preset = poolDaemonSpawn(undefined, { MALLOC_TOP_PAD_: "4096" }).env;
  assert.equal(preset.MALLOC_TOP_PAD_, "4096");
  assert.ok(!(preset[SERVER_ENV_SET_ENV] ?? "").split(",").includes("MALLOC_TOP_PAD_"));
  dropOwnMallocEnv(preset);
  assert.equal(preset.MALLOC_TOP_PAD_, "4096");
});

void test("the daemon's configuration is validated in a child: the values, or the loader's error code and message", { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), "kts-pool-prepare-"));
  try {
    const good = join(dir, "good.toml");
    await writeFile(good, "[factory]\npool_size = 3\nwarm_shims = 0\n");
    const p = await prepareInChild(good);
    assert.equal(p.source, good);
    assert.equal(p.configPath, good);
    assert.equal(p.config.factory.pool_size, 3);
    assert.equal(p.config.factory.warm_shims, 0);
    const bad = join(dir, "bad.toml");
    await writeFile(bad, "[factory]\npool_size = -1\n");
    await assert.rejects(prepareInChild(bad), (err: unknown) => isKataError(err, "INVALID_ARGUMENT") && err.message.includes("pool_size"));
    // One step nicer than this process: the `nice -n` path, without the starvation a nice-19 child
    // meets on a host busy with other work (it took over 60 s here beside CPU burners).
    await assert.rejects(prepareInChild(join(dir, "missing.toml"), getPriority(0) + 1), (err: unknown) => isKataError(err, "NOT_FOUND") && err.message.includes("missing.toml"));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test("cachedPrepare validates again only when the configuration file changed", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kts-pool-prepare-"));
  try {
    const file = join(dir, "c.toml");
    await writeFile(file, "[factory]\npool_size = 1\n");
    let calls = 0;
    const prepare = cachedPrepare(async (path): Promise<PreparedConfig> => {
      calls++;
      return { configPath: path, source: path, config: { n: calls } as unknown as PreparedConfig["config"] };
    });
    const a = await prepare(file);
    assert.equal(await prepare(file), a, "unchanged: the same values");
    assert.equal(calls, 1);
    await writeFile(file, "[factory]\npool_size = 2\nwarm_shims = 1\n");
    const b = await prepare(file);
    assert.equal(calls, 2, "changed: validated again");
    assert.notEqual(b, a);
    await rm(file);
    await prepare(file);
    assert.equal(calls, 3, "removed: validated again (and the loader reports it)");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
