// The container warm-up of a VM booted ahead of its pod (kernel parameter kata_ts.warm_up=containers,
// which the VM pool sets): once ready the agent runs one container of its own image through crun and
// removes it; afterwards the VM behaves as a fresh one (the warm-up's id is free in the agent and in
// crun) and a pod's container starts and execs normally. Nothing is left on the host afterwards.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { PassThrough } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { Sandbox } from "../../src/sandbox/sandbox.js";
import { runSpec } from "../../src/sandbox/default-spec.js";
import { WARM_UP_CONTAINERS } from "../../src/protocol/contract/guest.js";
import { WARM_UP_ID } from "../../src/agent/container/warm-up.js";
import { leftovers, makeVmFixture } from "./agent-container-vm-fixture.js";

void test("vm warm-up: the agent warms crun up once ready, leaves no container behind, and containers then run as usual", async () => {
  const fx = await makeVmFixture();
  let sb: Sandbox | undefined;
  try {
    const assets = { ...fx.assets, kernelCmdline: [...fx.assets.kernelCmdline, WARM_UP_CONTAINERS] };
    sb = await Sandbox.create({ id: "ctwarm", assets, memoryMiB: 512, bootTimeoutMs: 180_000 });
    const consoleLog = sb.vm!.consoleLogPath;
    let text = "";
    for (let i = 0; i < 240 && !/container warm-up (done|failed)/.test(text); i++) {
      await sleep(500);
      text = await readFile(consoleLog, "utf8").catch(() => "");
    }
    assert.match(text, /container warm-up done in \d+ ms/, `the guest console says:\n${text.split("\n").filter((l) => l.includes("kata-ts-agent")).join("\n")}`);

    // The warm-up's container is gone from the agent and from crun: a container may take its id.
    const ctr = await sb.createContainer({ id: WARM_UP_ID, spec: runSpec({ args: ["sleep", "1000"] }), rootfs: fx.rootfs });
    try {
      const init = await ctr.start();
      const p = await ctr.exec("probe", { args: ["sh", "-c", "echo ok; cat /proc/1/cmdline"], cwd: "/", user: { uid: 0, gid: 0 }, env: ["PATH=/bin"] });
      const out = new PassThrough();
      const parts: Buffer[] = [];
      out.on("data", (b: Buffer) => parts.push(b));
      await p.pumpOutput("stdout", out);
      assert.equal((await p.wait(AbortSignal.timeout(60_000))).status, 0);
      assert.equal(Buffer.concat(parts).toString(), "ok\nsleep\u00001000\u0000", "the exec ran in the pod's container, whose init is its own sleep");
      await init.signal(9);
      assert.equal((await init.wait(AbortSignal.timeout(60_000))).status, 137);
    } finally {
      await ctr.delete();
    }
  } finally {
    await sb?.destroy();
    const left = leftovers(fx.dir, fx.stateRoot);
    await fx.cleanup();
    assert.deepEqual(left, [], "nothing left after the sandbox is destroyed");
  }
});
