// The container warm-up of a VM booted ahead of its pod (kernel parameter kata_ts.warm_up=containers,
// which the VM pool sets): once ready the agent runs one container of its own image through crun and
// removes it. Before any pod container runs, a container that sees the whole guest (the guest's PID
// namespace, pid 1's root and mount table) finds nothing of the warm-up left: no process, mount,
// cgroup, bundle or crun state. Afterwards the VM behaves as a fresh one (the warm-up's id is free
// in the agent and in crun) and a pod's container starts and execs normally. Nothing is left on
// the host afterwards.
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

/**
 * Runs a container without a PID namespace of its own (it sees every guest process) and with
 * CAP_SYS_PTRACE (it may read /proc/1/root and /proc/1/mountinfo: the agent's view), and returns
 * its report: every process, cgroup under the agent's, bundle and crun state entry ("process: ",
 * "cgroup: ", "bundle: ", "crun: "), and a "warm-up left: " line for each that names the warm-up
 * (its id, its rootfs mount point, its `sleep 600`).
 */
async function inspectGuest(sb: Sandbox, rootfs: string): Promise<string> {
  const script = [
    'w=kata-ts-warm; w="$w-up"; r=warm; r="$r-up-rootfs"; n=600',
    'for p in /proc/[0-9]*; do c=$(tr "\\0" " " < $p/cmdline 2>/dev/null); [ -n "$c" ] && echo "process: $c"; done',
    "for d in /proc/1/root/sys/fs/cgroup/kata-ts/*/; do echo \"cgroup: $(basename $d)\"; done",
    "for d in /proc/1/root/run/kata-ts/containers/*; do echo \"bundle: $(basename $d)\"; done",
    "for d in /proc/1/root/run/kata-ts/crun/*; do echo \"crun: $(basename $d)\"; done",
    "sed 's/^/mount: /' /proc/1/mountinfo",
    'ls -d /proc/1/root/run/kata-ts/$r 2>/dev/null | sed "s/^/dir: /"',
    // What names the warm-up. Collected first, then matched: grep's own command line (the
    // patterns expanded) is not in the list; this script's has them only unexpanded.
    'all=$(for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null; echo; done; ls /proc/1/root/sys/fs/cgroup/kata-ts /proc/1/root/run/kata-ts/containers /proc/1/root/run/kata-ts/crun /proc/1/root/run/kata-ts; cat /proc/1/mountinfo)',
    'echo "$all" | grep -e "$w" -e "$r" -e "sleep $n" | sed "s/^/warm-up left: /"',
    "exit 0",
  ].join("\n");
  const spec = runSpec({ args: ["sh", "-c", script] });
  spec.linux!.namespaces = spec.linux!.namespaces!.filter((n) => n.type !== "pid" && n.type !== "cgroup");
  const caps = [...(spec.process!.capabilities!.bounding ?? []), "CAP_SYS_PTRACE"];
  spec.process!.capabilities = { bounding: caps, effective: caps, permitted: caps };
  const ctr = await sb.createContainer({ id: "inspect", spec, rootfs });
  try {
    const init = await ctr.start();
    const out = new PassThrough();
    const parts: Buffer[] = [];
    out.on("data", (b: Buffer) => parts.push(b));
    await init.pumpOutput("stdout", out);
    assert.equal((await init.wait(AbortSignal.timeout(60_000))).status, 0);
    return Buffer.concat(parts).toString();
  } finally {
    await ctr.delete();
  }
}

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

    // What the warm-up left in the guest, seen from a container in the guest's PID namespace that
    // may read pid 1's root (CAP_SYS_PTRACE). The script never spells the names it looks for, so
    // that its own command line does not match.
    const seen = await inspectGuest(sb, fx.rootfs);
    assert.match(seen, /^process: .*kata-ts-agent|^process: .*node/m, `the inspector sees the guest's processes (the agent):\n${seen}`);
    assert.match(seen, /^cgroup: inspect$/m, `the inspector sees the agent's cgroups (its own):\n${seen}`);
    assert.match(seen, /^bundle: inspect$/m, `the inspector sees the agent's bundles (its own):\n${seen}`);
    const left = seen.split("\n").filter((l) => l.startsWith("warm-up left: "));
    assert.deepEqual(left, [], `nothing of the warm-up is left in the guest:\n${seen}`);

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
