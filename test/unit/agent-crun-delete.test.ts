// RemoveContainer's `crun delete`: spawned only when crun still has a record of the container (a
// foreground `crun run` removes its own once the container exits; a killed crun leaves one).
// A stand-in crun records how it was called.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crunDelete, hasRecord, type CrunConfig } from "../../src/agent/oci/crun.js";

void test("crun delete: not run without a record; run with --force when crun left one", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-crun-delete-"));
  try {
    const calls = join(dir, "calls");
    const fake = join(dir, "crun");
    await writeFile(fake, `#!/bin/sh\necho "$@" >>${calls}\n`, { mode: 0o755 });
    const cfg: CrunConfig = { path: fake, root: join(dir, "state"), cgroupManager: "disabled" };
    await mkdir(cfg.root);

    assert.equal(await hasRecord(cfg, "gone"), false);
    await crunDelete(cfg, "gone");
    assert.equal(await readFile(calls, "utf8").catch(() => ""), "", "no crun spawned for a container crun already forgot");

    await mkdir(join(cfg.root, "left"));
    assert.equal(await hasRecord(cfg, "left"), true);
    await crunDelete(cfg, "left");
    assert.equal(await readFile(calls, "utf8"), `--root=${cfg.root} --cgroup-manager=disabled delete --force left\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
