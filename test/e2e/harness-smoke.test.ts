// The private containerd harness starts, answers ctr and CRI plugin queries, and leaves nothing
// behind when stopped.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { parse } from "smol-toml";
import { run } from "../../src/util/exec.js";
import { assertNoLeaks, startContainerd } from "../harness/containerd.js";
import { PAUSE_IMAGE_REF } from "../harness/images.js";
import { packagedShimPath } from "../../src/deploy/paths.js";

interface Dump {
  plugins: Record<string, { sandbox_image: string; restrict_oom_score_adj: boolean; containerd: { runtimes: Record<string, { runtime_path: string }> } }>;
}

void test("private containerd starts with the CRI plugin and stops without leaks", { timeout: 120_000 }, async () => {
  const ctd = await startContainerd();
  try {
    const { stdout } = await ctd.ctr(["version"]);
    assert.match(stdout, /Server:[\s\S]*Version:\s+1\.6\./);
    const plugins = await ctd.ctr(["plugins", "ls"]);
    const criLine = plugins.stdout.split("\n").find((l) => /\bio\.containerd\.grpc\.v1\s+cri\b/.test(l));
    assert.ok(criLine?.includes("ok"), `CRI plugin not ok:\n${plugins.stdout}`);
    assert.match(await readFile(ctd.configPath, "utf8"), /restrict_oom_score_adj = true/);
    // The kata-ts handler comes from the node installer's drop-in, next to the harness's runc.
    const dump = parse((await run("containerd", ["--config", ctd.configPath, "config", "dump"])).stdout) as unknown as Dump;
    const cri = dump.plugins["io.containerd.grpc.v1.cri"];
    assert.ok(cri);
    assert.deepEqual(Object.keys(cri.containerd.runtimes).sort(), ["kata-ts", "runc"]);
    assert.equal(cri.containerd.runtimes["kata-ts"]?.runtime_path, packagedShimPath());
    assert.equal(cri.sandbox_image, PAUSE_IMAGE_REF);
    assert.equal(cri.restrict_oom_score_adj, true);
  } finally {
    await ctd.stop();
  }
  await assertNoLeaks(ctd);
});
