// The private containerd harness starts, answers ctr and CRI plugin queries, and leaves nothing
// behind when stopped.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { assertNoLeaks, startContainerd } from "../harness/containerd.js";

void test("private containerd starts with the CRI plugin and stops without leaks", { timeout: 120_000 }, async () => {
  const ctd = await startContainerd();
  try {
    const { stdout } = await ctd.ctr(["version"]);
    assert.match(stdout, /Server:[\s\S]*Version:\s+1\.6\./);
    const plugins = await ctd.ctr(["plugins", "ls"]);
    const cri = plugins.stdout.split("\n").find((l) => /\bio\.containerd\.grpc\.v1\s+cri\b/.test(l));
    assert.ok(cri?.includes("ok"), `CRI plugin not ok:\n${plugins.stdout}`);
    assert.match(await readFile(ctd.configPath, "utf8"), /restrict_oom_score_adj = true/);
  } finally {
    await ctd.stop();
  }
  await assertNoLeaks(ctd);
});
